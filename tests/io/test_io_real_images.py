"""Every real image in the shared data folder, with the geometry its README states."""
import numpy as np
import pytest

from xrais.io import ImageError, identify, open_image, open_images

THAUMATIN = [f"thau_3_2_{n:04d}.cbf.bz2" for n in range(1, 20)]


def _check(geometry, distance, wavelength, beam_centre, pixel_size, shape, detector):
    assert geometry.distance == pytest.approx(distance)
    assert geometry.wavelength == pytest.approx(wavelength)
    assert geometry.beam_centre == pytest.approx(beam_centre)
    assert geometry.pixel_size == pytest.approx(pixel_size)
    assert geometry.shape == shape and geometry.detector == detector


def test_thaumatin_grid_all_19_stills(shared_data):
    frames = list(open_images(shared_data / "thaumatin_grid", on_error="raise"))
    assert [f.source.rsplit("/", 1)[-1] for f in frames] == THAUMATIN
    for frame in frames:  # PILATUS3 6M at Diamond I24
        _check(frame.geometry, 351.0, 0.96859, (1261.61, 1306.96), 0.172, (2527, 2463), "PILATUS 6M")
        assert frame.geometry.downsample == 2
        assert frame.mask[frame.pixels >= 115897].all()  # the count cut-off
    strongest, blank = frames[2], frames[18]  # 0003: spots to ~1.8 Å; 0019: blank (a few hot pixels)
    bright = [int(((f.pixels >= 30) & ~f.mask).sum()) for f in (strongest, blank)]
    assert bright[0] > 20 * max(bright[1], 1)


def test_dls_i03_pilatus(shared_data):
    path = shared_data / "image_examples" / "DLS_I03_smargon_0001.cbf.gz"
    frame = open_image(path)
    assert identify(str(path)).name == "miniCBF"
    _check(frame.geometry, 291.47, 0.97625, (1229.30, 1200.48), 0.172, (2527, 2463), "PILATUS 6M")
    assert frame.pixels[~frame.mask].max() == 336


def test_eiger2_16m_converted_to_minicbf(shared_data):
    frame = open_image(shared_data / "image_examples" / "dlsnxs2cbf_therm_0001.cbf.gz")
    _check(frame.geometry, 213.96, 0.98027, (2216.06, 2300.41), 0.075, (4362, 4148), "EIGER2 XE 16M")
    assert frame.geometry.downsample == 4
    assert frame.mask[frame.pixels < 0].all() and (frame.pixels[frame.mask] < 0).mean() > 0.99  # gaps −1/−2


def test_curved_pilatus_12m_is_a_clear_unsupported_geometry(shared_data):
    path = shared_data / "image_examples" / "DLS_I23_P12M_thau_00001.cbf.gz"
    with pytest.raises(ImageError) as error:
        open_image(path)
    assert str(error.value) == (f"{path}: unsupported geometry: the PILATUS 12M is a curved detector; "
                                "xrais handles flat detectors only")
    (item,) = list(open_images(path, on_error="yield"))
    assert item.message.startswith("unsupported geometry")


def test_rayonix_and_cspad(shared_data):
    rayonix = open_image(shared_data / "rayonix340" / "hit-20181213155134902.cbf").geometry
    _check(rayonix, 124.0, 1.30375729885, (960.0, 960.0), 0.177083333333, (1920, 1920), "Rayonix MX340-HS 4x4")
    for frame in open_images(shared_data / "thermolysin_cspad", on_error="raise"):
        assert abs(frame.geometry.wavelength - 1.271) < 0.002 and abs(frame.geometry.distance - 130) < 0.5
        assert frame.geometry.pixel_size == pytest.approx(0.10992) and frame.metadata["panels"] == 64
        assert np.isfinite(frame.pixels).all()


def test_single_image_files_are_numbered_from_their_names(shared_data, tmp_path):
    """Issue 18, item 1: the image number of a CBF/SMV/MarCCD file is the last run of digits of
    its name (as dxtbx's templates), not 0 for every image of a series; NeXus keeps its frame index."""
    from iohelpers import write_eiger
    from xrais.io import Geometry
    from xrais.io.cbf import write_cbf
    from xrais.io.mccd import write_mccd
    from xrais.io.smv import write_smv

    assert open_image(shared_data / "thaumatin_grid" / "thau_3_2_0003.cbf.bz2").index == 3
    geometry = Geometry(distance=200.0, wavelength=1.0, pixel_size=0.1, beam_centre=(50.0, 40.0), shape=(80, 100))
    pixels = np.random.default_rng(0).poisson(5, (80, 100)).astype(np.int32)
    for write, name, number in ((write_cbf, "x_0012.cbf", 12), (write_smv, "lyso_2_00107.img", 107),
                                (write_mccd, "y_017.mccd", 17), (write_cbf, "overview.cbf", 0)):
        write(str(tmp_path / name), pixels, geometry)
        assert open_image(tmp_path / name).index == number, name
    write_eiger(str(tmp_path / "s_0005_master.h5"), pixels[None].astype(np.uint16).repeat(3, axis=0),
                beam_px=(50.0, 40.0), distance_mm=200.0, wavelength=1.0, pixel_mm=0.1)
    assert [f.index for f in open_images(tmp_path / "s_0005_master.h5")] == [0, 1, 2]
