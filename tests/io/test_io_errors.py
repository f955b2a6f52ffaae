"""Reader selection and error handling across formats: every bad input is one ImageError line
naming the file and the problem; a bad file or frame never stops a series."""
import bz2
import gzip

import numpy as np
import pytest

from iohelpers import write_eiger
from xrais.io import FrameError, Geometry, ImageError, identify, open_image, open_images, readers
from xrais.io.cbf import write_cbf
from xrais.io.mccd import write_mccd
from xrais.io.smv import write_smv

GEOMETRY = Geometry(distance=200.0, wavelength=1.0, pixel_size=0.1, beam_centre=(50.0, 40.0), shape=(80, 100))


@pytest.fixture
def written(tmp_path):
    """One written file of each format xrais writes."""
    pixels = np.random.default_rng(0).poisson(5, (80, 100)).astype(np.int32)
    files = {"SMV": tmp_path / "a_00001.img", "MarCCD": tmp_path / "b.mccd", "miniCBF": tmp_path / "c.cbf",
             "NeXus": tmp_path / "d_master.h5"}
    write_smv(str(files["SMV"]), pixels, GEOMETRY)
    write_mccd(str(files["MarCCD"]), pixels, GEOMETRY)
    write_cbf(str(files["miniCBF"]), pixels, GEOMETRY)
    write_eiger(str(files["NeXus"]), pixels[None].astype(np.uint16).repeat(3, axis=0), beam_px=(50.0, 40.0),
                distance_mm=200.0, wavelength=1.0, pixel_mm=0.1)
    return files


def test_reader_order_and_identification(written, shared_data):
    assert [r.name for r in readers()][:6] == ["DIALS .expt", "NeXus", "miniCBF", "imgCIF", "SMV", "MarCCD"]
    for name, path in written.items():
        assert identify(str(path)).name == name
        frame = open_image(path)
        assert frame.geometry.distance == pytest.approx(200.0) and frame.geometry.beam_centre == pytest.approx((50, 40))
    assert identify(str(shared_data / "rayonix340" / "hit-20181213155134902.cbf")).name == "imgCIF"


@pytest.mark.parametrize("make, problem", [
    (lambda p: None, "no such file"),
    (lambda p: p.write_bytes(b""), "file is empty"),
    (lambda p: p.write_bytes(b"GIF89a not a diffraction image" * 10), "unknown image format \\(supported: DIALS .expt,"),
])
def test_missing_empty_unknown(tmp_path, make, problem):
    path = tmp_path / "image.img"
    make(path)
    with pytest.raises(ImageError, match=problem) as error:
        open_image(path)
    assert str(error.value).startswith(str(path)) and "\n" not in str(error.value)


def test_a_folder_is_not_an_image(tmp_path):
    with pytest.raises(ImageError, match="is a folder, not an image file"):
        identify(str(tmp_path))
    with pytest.raises(ImageError, match="file holds no frames"):
        open_image(tmp_path)


@pytest.mark.parametrize("kind", ["SMV", "MarCCD", "miniCBF"])
@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress])
def test_truncated_compressed_files(written, tmp_path, kind, compress):
    source = written[kind]
    packed = tmp_path / (source.name + (".gz" if compress is gzip.compress else ".bz2"))
    data = compress(source.read_bytes())
    packed.write_bytes(data)
    np.testing.assert_array_equal(open_image(packed).pixels, open_image(source).pixels)
    packed.write_bytes(data[:len(data) // 2])
    with pytest.raises(ImageError, match="corrupt or truncated|truncated"):
        open_image(packed)


@pytest.mark.parametrize("kind", ["SMV", "MarCCD", "miniCBF", "NeXus"])
def test_truncated_files(written, kind):
    path = written[kind]
    path.write_bytes(path.read_bytes()[:len(path.read_bytes()) * 2 // 3])
    with pytest.raises(ImageError) as error:
        list(open_images(path, on_error="raise"))
    assert str(error.value).startswith(str(path))


def test_a_folder_with_one_bad_file_still_gives_the_good_frames(tmp_path):
    pixels = np.ones((80, 100), np.int32)
    for number in range(1, 5):
        write_smv(str(tmp_path / f"x_{number:05d}.img"), pixels * number, GEOMETRY)
    bad = tmp_path / "x_00003.img"
    bad.write_bytes(bad.read_bytes()[:3000])
    frames = list(open_images(tmp_path))
    assert [int(f.pixels[0, 0]) for f in frames] == [1, 2, 4]
    items = list(open_images(tmp_path, on_error="yield"))
    assert isinstance(items[2], FrameError) and items[2].source == str(bad) and "SMV data truncated" in items[2].message
    with pytest.raises(ImageError, match="x_00003.img: SMV data truncated"):
        list(open_images(tmp_path, on_error="raise"))


def test_geometry_problems_suggest_the_override(written):
    with pytest.raises(ImageError, match="distance = -5 mm makes no sense .*; correct it with a geometry override"):
        open_image(written["MarCCD"], geometry={"distance": -5})
    assert open_image(written["NeXus"], geometry={"beam_centre": (10, 20)}).geometry.beam_centre == (10.0, 20.0)


def test_dxtbx_adapter_reads_what_dxtbx_reads(shared_data):
    pytest.importorskip("dxtbx")
    from dxtbx.model.experiment_list import ExperimentListFactory

    from xrais.io.dxtbx_adapter import READER, frames_from_imageset

    path = shared_data / "image_examples" / "DLS_I03_smargon_0001.cbf.gz"
    assert READER is not None and READER.identify(str(path), b"")
    imageset = ExperimentListFactory.from_filenames([str(path)]).imagesets()[0]
    (frame,) = list(frames_from_imageset(imageset))
    g = frame.geometry
    assert g.distance == pytest.approx(291.47, abs=0.01) and g.beam_centre == pytest.approx((1229.30, 1200.48), abs=0.01)
    np.testing.assert_array_equal(frame.pixels, open_image(path).pixels)
    (cspad,) = list(READER.read(str(shared_data / "thermolysin_cspad" / "idx-20130301060858401.cbf"), None))
    assert cspad.metadata["panels"] == 64 and abs(cspad.geometry.distance - 130.1) < 0.1


def _imported_modules(path):
    """Absolute names of the modules a file of the xrais.io package imports (relative ones resolved)."""
    import ast

    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = ["xrais", "io"]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
                names += [module] if node.module else [f"{module}.{alias.name}" for alias in node.names]
            else:
                names.append(node.module)
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "import_module" and node.args \
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            names.append(node.args[0].value)
    return names


def test_the_io_layer_imports_nothing_above_it():
    """No module under xrais/io imports xrais.plugins or any other xrais package above io."""
    import pathlib

    import xrais.io

    folder = pathlib.Path(xrais.io.__file__).parent
    upward = {f"{path.name}: {name}" for path in folder.glob("*.py") for name in _imported_modules(path)
              if name.startswith("xrais") and not (name == "xrais.io" or name.startswith("xrais.io."))}
    assert not upward, f"xrais.io imports from above its layer: {sorted(upward)}"


def test_plugin_detector_models_reach_the_catalogue(tmp_path):
    """A detector model from a plugin's xrais_detector_models hook is found by the catalogue (and
    so sets the downsample factor of images from it); the installed readers still come from the
    plugins (xrais's own among them)."""
    from xrais import plugins
    from xrais.io import detectors

    model = detectors.DetectorModel("Test PAD 3M", (1800, 1700), 0.1, 2, "TESTPAD", (r"TESTPAD\s*3M",))

    class DetectorPlugin:
        @plugins.hookimpl
        def xrais_detector_models(self):
            return [model]

    manager = plugins.plugin_manager()
    manager.register(DetectorPlugin(), name="test_detector_plugin")
    plugins.detector_models.cache_clear()
    try:
        assert detectors.find("TESTPAD 3M S/N 1") is model
        assert Geometry(distance=200.0, wavelength=1.0, pixel_size=0.1, beam_centre=(850.0, 900.0),
                        shape=(1800, 1700), detector="Test PAD 3M").downsample == 2
        assert [type(r).__name__ for r in readers()] == [type(r).__name__ for r in plugins.reader_list()]
    finally:
        manager.unregister(name="test_detector_plugin")
        plugins.detector_models.cache_clear()
    assert detectors.find("TESTPAD 3M S/N 1") is None


def test_an_electron_diffraction_frame_is_refused_as_such(shared_data):
    """A real Timepix frame from an electron microscope (λ 0.0251 Å; reader_cases/README.md §3):
    refused in one line that says electron diffraction is not supported, not that the wavelength
    'makes no sense' or could be overridden."""
    with pytest.raises(ImageError, match=r"0\.0251 Å is an electron wavelength: electron diffraction is not "
                                         r"supported \(xrais's geometry and models are for X-rays\)$"):
        open_image(shared_data / "reader_cases" / "TIMEPIX_SU_512-stdgoni_0001.img.gz")
