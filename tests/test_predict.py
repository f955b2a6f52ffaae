"""The Python API (xrais.Predictor) and the dials.xrais_* programs, with real (tiny) networks in the
registry format: one with random weights, one whose output is designed (constant radius), so that
every number can be checked."""
import csv
import json
import os
import shutil
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

import xrais
from xrais import models, plugins
from xrais.command_line.predict import multilattice_program, resolution_program
from xrais.conditioning import condition
from xrais.io import Geometry
from xrais.io.cbf import write_cbf
from xrais.predict import Predictor

SHAPE = (600, 640)
GEOMETRY = Geometry(distance=200.0, wavelength=1.0, pixel_size=0.172, beam_centre=(321.3, 298.7), shape=SHAPE,
                    detector="PILATUS 6M")


def _tiny(kind, constant_radius=None, seed=0):
    torch.manual_seed(seed)
    network = models.XraisNet(models.Architecture(kind, depth=18, width=0.125, norm="group"))
    if constant_radius is not None:
        with torch.no_grad():
            network.fc2.weight.zero_()
            network.fc2.bias.fill_(constant_radius / network.architecture.radius_scale)
    return network


#: The quadrant networks (the resolution model and the paper's multi-lattice ResNet).
QUADRANT_NETWORKS = ("resolution", "multilattice_resnet")


@pytest.fixture()
def model_folder(tmp_path, monkeypatch):
    """Tiny 'resolution' (constant radius 120 downsampled px) and random 'multilattice_resnet' models
    (the 'multilattice' predictor's lattice-evidence network is the shipped one)."""
    folder = tmp_path / "models"
    models.export(_tiny("resolution", constant_radius=120.0), folder / "resolution")
    models.export(_tiny("multilattice", seed=1), folder / "multilattice_resnet")
    monkeypatch.setenv("XRAIS_MODELS", str(folder))
    plugins.predictors.cache_clear()  # fresh predictor objects load the models above
    yield folder
    plugins.predictors.cache_clear()


def _images(folder, count=3, seed=0):
    rng = np.random.default_rng(seed)
    paths = []
    for k in range(count):
        pixels = rng.poisson(5 + 10 * k, SHAPE).astype(np.int32)
        for slow, fast in zip(rng.integers(0, SHAPE[0] - 1, 60), rng.integers(0, SHAPE[1] - 1, 60)):
            pixels[slow:slow + 2, fast:fast + 2] += 500  # spots, so that no quadrant reads as empty
        path = folder / f"img_{k:04d}.cbf"
        write_cbf(str(path), pixels, GEOMETRY)
        paths.append(str(path))
    return paths


def test_results_in_order_with_errors_and_designed_values(tmp_path, model_folder):
    paths = _images(tmp_path)
    bad = tmp_path / "img_0001b.cbf"
    bad.write_bytes(open(paths[0], "rb").read()[:3000])
    inputs = [paths[0], str(bad), paths[1], paths[2]]
    predictor = Predictor(predictors=QUADRANT_NETWORKS, device="cpu")
    results = predictor.predict(inputs)
    assert [r["image"] for r in results] == inputs
    assert results[1]["error"] and "truncated" in results[1]["error"] and results[1]["d_min"] is None
    expected_inverse_d = float(GEOMETRY.inverse_d_at(120.0 * 2))  # 120 downsampled px × factor 2
    for r in (results[0], results[2], results[3]):
        assert r["error"] is None
        assert r["inverse_d_quadrants"] == pytest.approx([expected_inverse_d] * 4, rel=1e-4)
        assert r["d_min"] == pytest.approx(1 / expected_inverse_d, rel=1e-3)
        assert r["d_quadrants"] == pytest.approx([1 / expected_inverse_d] * 4, rel=1e-3)
        assert r["b_factor"] == pytest.approx(4 * (1 / expected_inverse_d) ** 2 + 12, rel=1e-3)
        assert r["diffraction"] is True and 0 <= r["p_multilattice_resnet"] <= 1
        assert len(r["p_multilattice_resnet_quadrants"]) == 1
    assert list(results[0]) == list(predictor.fields)


def test_no_diffraction_instead_of_a_made_up_number(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    # A radius of 5 downsampled px on this geometry is 1/d ≈ 0.0086 Å⁻¹ < 1/20: "no diffraction".
    models.export(_tiny("resolution", constant_radius=5.0), folder / "resolution")
    monkeypatch.setenv("XRAIS_MODELS", str(folder))
    plugins.predictors.cache_clear()
    try:
        pixels = np.random.default_rng(0).poisson(5, SHAPE).astype(np.int32)
        (result,) = Predictor(predictors=("resolution",), device="cpu").predict([(pixels, GEOMETRY)])
    finally:
        plugins.predictors.cache_clear()
    assert result["diffraction"] is False and result["d_min"] is None and result["b_factor"] is None
    assert result["d_quadrants"] == [None] * 4


def test_api_matches_the_model_on_arrays_frames_and_one_quadrant(tmp_path, model_folder):
    rng = np.random.default_rng(3)
    pixels = rng.poisson(30, SHAPE).astype(np.int32)
    network = models.load("multilattice_resnet", device="cpu")
    direct = network.predict(condition(pixels, None, GEOMETRY), GEOMETRY)
    (from_array,) = Predictor(predictors=("multilattice_resnet",), device="cpu", quadrants=4).predict([(pixels, GEOMETRY)])
    assert from_array["p_multilattice_resnet_quadrants"] == pytest.approx(direct.tolist(), abs=1e-4)
    assert from_array["p_multilattice_resnet"] == pytest.approx(float(direct.mean()), abs=1e-4)
    (quadrant_0,) = Predictor(predictors=("multilattice_resnet",), device="cpu").predict([(pixels, GEOMETRY)])
    assert quadrant_0["p_multilattice_resnet"] == pytest.approx(float(direct[0]), abs=1e-4)
    frame = xrais.open_image(_images(tmp_path, 1)[0])
    (one,) = Predictor(predictors=("resolution",), device="cpu", quadrants=1).predict([frame])
    assert len(one["d_quadrants"]) == 1 and one["image"] == frame.source


def test_an_array_and_its_file_are_masked_alike_and_agree(shared_data):
    """(pixels, Geometry) from a real PILATUS3 file gives the file's answer: the array is masked by
    the same rules (here the catalogue's trusted maximum takes out the two overflowed pixels next to
    the beam that the file's Count_cutoff masks), and an explicit mask or cut-off can be given."""
    path = shared_data / "thaumatin_grid" / "thau_3_2_0003.cbf.bz2"
    frame = xrais.open_image(path)
    from_array = xrais.Frame.from_pixels(frame.pixels, frame.geometry)
    assert np.array_equal(from_array.mask, frame.mask)
    predictor = Predictor(predictors=("resolution",), device="cpu")
    from_file, from_pair = predictor.predict([str(path), (frame.pixels, frame.geometry)])
    assert from_pair["error"] is None and from_pair["d_min"] == pytest.approx(from_file["d_min"], abs=1e-3)
    assert from_pair["inverse_d_quadrants"] == pytest.approx(from_file["inverse_d_quadrants"], abs=1e-4)
    geometry = Geometry(distance=200.0, wavelength=1.0, pixel_size=0.075, beam_centre=(2.0, 2.0), shape=(3, 4))
    counts = np.array([[0, 5, 65535, 7], [1, 2, 3, 4], [9, 9, 9, 9]], dtype=np.uint16)
    explicit = np.zeros((3, 4), dtype=bool)
    explicit[2, 0] = True
    masked = xrais.Frame.from_pixels(counts, geometry, mask=explicit, trusted_max=8).mask
    assert masked.tolist() == [[False, False, True, False], [False, False, False, False], [True, True, True, True]]


def test_the_api_and_the_programs_share_each_predictors_quadrants(tmp_path, model_folder, monkeypatch, capsys):
    """One default per quadrant predictor (the paper's: resolution 4 quadrants, the multi-lattice
    ResNet quadrant 0), used by xrais.Predictor and by dials.xrais_multilattice /
    dials.xrais_resolution alike, so that an image gets the same p_multilattice_resnet from all of
    them; quadrants=4 still asks for all four everywhere. The raw-frame predictors (multilattice
    among them) are given no quadrants."""
    monkeypatch.chdir(tmp_path)
    (path,) = _images(tmp_path, 1)
    assert Predictor(device="cpu").plugin_quadrants == {"resolution": (0, 1, 2, 3)}
    networks = Predictor(predictors=QUADRANT_NETWORKS, device="cpu")
    assert networks.plugin_quadrants == {"resolution": (0, 1, 2, 3), "multilattice_resnet": (0,)}
    assert Predictor(predictors=QUADRANT_NETWORKS, device="cpu", quadrants=4).plugin_quadrants[
        "multilattice_resnet"] == (0, 1, 2, 3)
    (api,) = networks.predict([path])
    (alone,) = Predictor(predictors=("multilattice_resnet",), device="cpu").predict([path])
    assert len(api["p_multilattice_resnet_quadrants"]) == 1 and len(api["d_quadrants"]) == 4
    assert multilattice_program([path, "predictors=multilattice_resnet", "output.json=m.json", "output.plot=None",
                                 "output.log=None"]) == 0
    assert resolution_program([path, "predictors=resolution,multilattice_resnet", "output.json=r.json",
                               "output.plot=None", "output.log=None"]) == 0
    from_programs = [json.loads((tmp_path / name).read_text())["images"][0] for name in ("m.json", "r.json")]
    for result in [alone] + from_programs:
        assert result["p_multilattice_resnet"] == pytest.approx(api["p_multilattice_resnet"], abs=1e-4)
    assert multilattice_program([path, "predictors=multilattice_resnet", "quadrants=4", "output.json=m4.json",
                                 "output.plot=None", "output.log=None"]) == 0
    assert len(json.loads((tmp_path / "m4.json").read_text())["images"][0]["p_multilattice_resnet_quadrants"]) == 4
    capsys.readouterr()
    assert multilattice_program(["-h"]) == 0
    multilattice_help = capsys.readouterr().out
    assert resolution_program(["-h"]) == 0
    resolution_help = capsys.readouterr().out
    assert "quadrants" in multilattice_help and "reduce" not in multilattice_help
    assert "reduce" in resolution_help and "multilattice_resnet 1" in resolution_help


def test_near_empty_frames_read_as_no_diffraction(shared_data):
    """A whole PILATUS 6M frame of sparse Poisson noise (0.05 photons per pixel: a shutter that did
    not open, an empty loop at low background) is no diffraction, not d_min 1.36 Å as the shipped
    network alone reads it; the weakest real image here still reads as diffraction, its quadrants
    holding a few pixels above their noise."""
    from xrais.plugins.builtin_predictors import MIN_BRAGG_PIXELS, bragg_pixel_count

    rng = np.random.default_rng(3)
    geometry = Geometry(distance=250.0, wavelength=1.0, pixel_size=0.172, detector="PILATUS 6M", shape=(2527, 2463),
                        beam_centre=(1231.5, 1263.5))
    predictor = Predictor(predictors=("resolution",), device="cpu")
    sparse = [(rng.poisson(level, geometry.shape).astype(np.int32), geometry) for level in (0.02, 0.05, 0.1)]
    for result in predictor.predict(sparse):
        assert result["diffraction"] is False and result["d_min"] is None, result["inverse_d_quadrants"]
    weak = shared_data / "image_examples" / "dlsnxs2cbf_therm_0001.cbf.gz"
    assert all(bragg_pixel_count(q) >= MIN_BRAGG_PIXELS for q in condition(*_frame_parts(weak)))
    (result,) = predictor.predict([str(weak)])
    assert result["diffraction"] is True
    quadrant = np.full((512, 512), 2.0, dtype=np.float32)
    quadrant[100:102, 200:202] = 5.0  # four pixels 3 above the median: a spot
    quadrant[0, 0] = 256.0  # a hot pixel is not one
    assert bragg_pixel_count(quadrant) == 4 and bragg_pixel_count(np.zeros((512, 512), np.float32)) == 0


def test_frames_of_no_crystal_get_no_multilattice_answer_with_the_reason():
    """Sparse noise (a handful of spots of no crystal) indexes no lattice: p_multilattice is null,
    multilattice_undetermined says why, and the summary counts such frames apart from the calls."""
    rng = np.random.default_rng(8)
    geometry = Geometry(distance=250.0, wavelength=1.0, pixel_size=0.172, detector="PILATUS 6M", shape=(1000, 1000),
                        beam_centre=(500.5, 500.5))
    noise = rng.poisson(0.05, geometry.shape).astype(np.int32)
    for _ in range(40):  # forty bright random 'spots'
        slow, fast = rng.integers(20, 980, 2)
        noise[slow:slow + 2, fast:fast + 2] += 200
    results = Predictor(predictors=("multilattice", "spots"), device="cpu").predict([(noise, geometry)])
    (result,) = results
    assert result["n_spots"] >= 30 and result["p_multilattice"] is None and result["multilattice"] is None
    assert result["multilattice_undetermined"].startswith("no lattice indexed: no lattice of the")
    summary = xrais.predict.summarise(results)
    assert summary["n_multilattice_undetermined"] == 1 and summary["fraction_multilattice"] is None


def _frame_parts(path):
    frame = xrais.open_image(path)
    return frame.pixels, frame.mask, frame.geometry


def test_noise_is_blank_or_refused_as_too_small_at_any_size():
    """Pure Poisson noise, with the shipped resolution model: an array too small for it (no quadrant
    with 60×60 downsampled pixels of image) is refused with one error line; on every size it takes
    (300 × 300 pixels and up) it is read as no diffraction, whatever the noise level. With the default predictors, the
    lattice evidence answers on the small arrays (no lattice in noise) and the resolution's reason
    is in ``not_analysed``."""
    rng = np.random.default_rng(12)
    predictor = Predictor(predictors=("resolution",), device="cpu")
    cases = []
    for shape, detector, accepted in (((80, 80), "generic", False), ((300, 300), "generic", True),
                                      ((600, 640), "PILATUS 6M", True), ((1000, 1000), "generic", True),
                                      ((1300, 1200), "generic", True), ((1679, 1475), "PILATUS 2M", True)):
        for level in (5, 50, 500):
            geometry = Geometry(distance=200.0, wavelength=1.0, pixel_size=0.172, detector=detector, shape=shape,
                                beam_centre=(shape[1] / 2 + 20.3, shape[0] / 2 - 10.7))
            cases.append((shape, level, accepted, (rng.poisson(level, shape).astype(np.int32), geometry)))
    for (shape, level, accepted, _), result in zip(cases, predictor.predict([case[-1] for case in cases])):
        if accepted:
            assert result["error"] is None and result["diffraction"] is False and result["d_min"] is None, \
                (shape, level, result["inverse_d_quadrants"])
        else:
            assert result["error"].startswith(f"image too small to analyse: {shape[1]}×{shape[0]} pixels")
            assert "\n" not in result["error"] and "needs 60×60" in result["error"], result["error"]
    small = [case[-1] for case in cases if not case[2]][:3]
    for result in Predictor(device="cpu").predict(small):
        assert result["error"] is None and result["d_min"] is None and result["p_multilattice"] is None
        assert result["not_analysed"].startswith("resolution: image too small to analyse")
        assert result["multilattice_undetermined"].startswith("no lattice indexed")
    near_the_edge = Geometry(distance=200.0, wavelength=1.0, pixel_size=0.172, beam_centre=(40.5, 650.5),
                             shape=(1300, 1200))
    noise = rng.poisson(5, (1300, 1200)).astype(np.int32)
    (result,) = Predictor(predictors=("resolution",), device="cpu").predict([(noise, near_the_edge)])
    assert result["error"] is None and [v is None for v in result["inverse_d_quadrants"]] == [True, False, True, False]
    (result,) = Predictor(predictors=QUADRANT_NETWORKS, device="cpu").predict([(noise, near_the_edge)])
    # the multi-lattice ResNet reads quadrant 0 alone: it cannot, the resolution network answers
    assert result["error"] is None and result["p_multilattice_resnet"] is None and result["d_min"] is None
    assert result["not_analysed"].startswith("multilattice_resnet: image too small to analyse")
    assert result["not_analysed"].endswith("in quadrant 0 after the 1×1 max-pool; the multilattice_resnet model needs 320×320")


# The random multi-lattice network's probabilities, rounded to 4 decimals in the rows. Batches of
# other sizes sum float32 terms in another order, which changes the last bits (~1e-7) and can move a
# rounded value by one step of 1e-4 (1.5e-4: one step plus its binary representation error).
ROUNDED_PROBABILITIES = ("p_multilattice", "p_multilattice_resnet", "p_multilattice_resnet_quadrants")
ONE_ROUNDING_STEP = 1.5e-4


def _assert_same_predictions(rows, reference):
    """The same rows, timings aside: every field exact (image order, errors, the constant resolution
    model's outputs), the probabilities to one rounding step."""
    exact = lambda rs: [{k: v for k, v in r.items() if not k.endswith("_ms") and k not in ROUNDED_PROBABILITIES}
                        for r in rs]  # noqa: E731
    assert exact(rows) == exact(reference)
    for row, expected in zip(rows, reference):
        for key in ROUNDED_PROBABILITIES:
            if expected.get(key) is None:  # no lattice indexed, or the predictor not run: the same
                assert row.get(key) is None, (row["image"], key)
            else:
                assert row[key] == pytest.approx(expected[key], abs=ONE_ROUNDING_STEP), (row["image"], key)


def test_threads_and_concurrent_callers_agree(tmp_path, model_folder):
    paths = _images(tmp_path, 4)
    every = ("resolution", "multilattice", "multilattice_resnet", "spots", "decay", "indexing")
    serial = Predictor(predictors=every, device="cpu", batch_size=3).predict(paths)
    threaded = Predictor(predictors=every, device="cpu", nproc=2, batch_size=2).predict(paths)
    _assert_same_predictions(threaded, serial)
    shared = Predictor(predictors=every, device="cpu")
    outputs = [None, None]

    def call(slot):
        outputs[slot] = shared.predict(paths)

    workers = [threading.Thread(target=call, args=(k,)) for k in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    _assert_same_predictions(outputs[0], serial)
    _assert_same_predictions(outputs[1], serial)


def test_series_results_carry_image_numbers_and_plot_against_them(tmp_path, model_folder):
    """Issue 18, item 1: results of a CBF series carry the image number of each file (also for a
    file that cannot be read), the table does not repeat it, and the plot's x axis is those
    numbers with whole-number ticks."""
    from xrais.results import results_figure, table_lines

    pixels = np.random.default_rng(0).poisson(5, SHAPE).astype(np.int32)
    paths = [str(tmp_path / f"thau_{n:04d}.cbf") for n in (3, 4)]
    for path in paths:
        write_cbf(path, pixels, GEOMETRY)
    bad = tmp_path / "thau_0005.cbf"
    bad.write_bytes(b"###CBF: VERSION 1.5\n")
    results = Predictor(predictors=("resolution",), device="cpu").predict(paths + [str(bad)])
    assert [r["frame"] for r in results] == [3, 4, 5] and results[2]["error"]
    names = [line.split()[0] for line in table_lines(results)[2:]]
    assert names == ["thau_0003.cbf", "thau_0004.cbf", "thau_0005.cbf"]
    figure = results_figure(results)
    axis = figure.axes[0]
    assert list(axis.lines[0].get_xdata()) == [3, 4]
    low, high = axis.get_xlim()
    ticks = [t for t in axis.get_xticks() if low <= t <= high]
    assert ticks and all(float(t).is_integer() for t in ticks)
    assert axis.get_xlabel() == "image number"
    import matplotlib.pyplot as plt

    plt.close(figure)


def test_unknown_predictor_names_the_installed_ones():
    with pytest.raises(xrais.io.ChoiceError, match="installed: .*resolution"):
        Predictor(predictors=("nope",))


def test_program_outputs_and_exit_codes(tmp_path, model_folder, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    images = tmp_path / "images"
    images.mkdir()
    paths = _images(images)
    assert resolution_program([str(images), "predictors=resolution,multilattice", "output.csv=r.csv",
                               "output.log=run.log"]) == 0
    document = json.loads((tmp_path / "xrais_resolution.json").read_text())
    row = document["images"][0]
    for key in ("image", "frame", "d_min", "d_mean", "d_quadrants", "b_factor", "p_multilattice", "error"):
        assert key in row
    assert [r["image"] for r in document["images"]] == paths
    assert document["summary"]["n_images"] == 3 and document["summary"]["xrais_b"] == pytest.approx(row["b_factor"])
    with open(tmp_path / "r.csv") as handle:
        table = list(csv.DictReader(handle))
    assert {k for k, v in row.items() if not isinstance(v, list)} <= set(table[0]) and len(table) == 3
    assert float(table[0]["d_min"]) == pytest.approx(row["d_min"])
    assert (tmp_path / "xrais_resolution.png").stat().st_size > 5000
    out = capsys.readouterr().out
    assert "d_min/Å" in out and "XRAIS B" in out and (tmp_path / "run.log").exists()
    # A corrupt image: an error row and a log line, the others still processed, exit code 1.
    (images / "img_0009.cbf").write_bytes(b"###CBF: VERSION 1.5\n")
    assert multilattice_program([str(images), "output.json=m.json", "output.plot=None", "output.log=None"]) == 1
    document = json.loads((tmp_path / "m.json").read_text())
    assert [bool(r["error"]) for r in document["images"]] == [False, False, False, True]
    assert "p_multilattice" in document["images"][0] and "d_min" not in document["images"][0]
    assert resolution_program(["nproc=0"]) == 2


@pytest.fixture()
def experimental_multilattice(tmp_path, monkeypatch):
    """The tiny models, the multi-lattice ResNet's card marked experimental (as the shipped one's)."""
    folder = tmp_path / "experimental_models"
    models.export(_tiny("resolution", constant_radius=120.0), folder / "resolution")
    models.export(_tiny("multilattice", seed=1), folder / "multilattice_resnet",
                  {"limitations": "experimental: near chance on held-out images. It needs more data."})
    monkeypatch.setenv("XRAIS_MODELS", str(folder))
    plugins.predictors.cache_clear()
    yield folder
    plugins.predictors.cache_clear()


def test_experimental_numbers_say_so_and_the_threshold_is_a_parameter(tmp_path, experimental_multilattice,
                                                                      monkeypatch, capsys):
    """Numbers from a model whose card says "experimental:" carry that caveat in the summary (lines
    and JSON), the table header and the plot; the resolution numbers do not. The multi-lattice
    threshold is a parameter of the API and the programs."""
    import matplotlib

    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(matplotlib.rcParams, "svg.fonttype", "none")  # text stays text in the SVG
    paths = _images(tmp_path)
    predictor = Predictor(predictors=QUADRANT_NETWORKS, device="cpu")
    assert predictor.experimental == {field: "near chance on held-out images" for field in
                                      ("p_multilattice_resnet", "p_multilattice_resnet_quadrants", "multilattice_resnet")}
    assert resolution_program(paths + ["predictors=resolution,multilattice_resnet", "output.json=r.json",
                                       "output.plot=r.svg", "output.log=None"]) == 0
    out = capsys.readouterr().out
    summary = json.loads((tmp_path / "r.json").read_text())["summary"]
    assert summary["experimental"] == {"fraction_multilattice_resnet": "near chance on held-out images"}
    fraction_line = next(line for line in out.splitlines() if "fraction multi-lattice (ResNet)" in line)
    assert fraction_line.endswith("(experimental model: near chance on held-out images)")
    assert "experimental" not in next(line for line in out.splitlines() if "median d_min" in line)
    assert "p_multi_resnet*" in out and "* p_multi_resnet: experimental model, near chance on held-out images" in out
    plot = (tmp_path / "r.svg").read_text()
    assert plot.count("EXPERIMENTAL model: near chance") == 1
    for threshold, fraction in (("0", 1.0), ("1", 0.0)):
        assert multilattice_program(paths + ["predictors=multilattice_resnet", f"multilattice_threshold={threshold}",
                                             f"output.json=m{threshold}.json", "output.plot=None",
                                             "output.log=None"]) == 0
        document = json.loads((tmp_path / f"m{threshold}.json").read_text())
        assert document["summary"]["fraction_multilattice_resnet"] == fraction
        assert document["parameters"]["multilattice_threshold"] == float(threshold)
    strict = Predictor(predictors=("multilattice_resnet",), device="cpu", multilattice_threshold=1.0).predict(paths)
    assert not any(r["multilattice_resnet"] for r in strict)
    assert multilattice_program(paths + ["multilattice_threshold=1.5"]) == 2


def test_units_and_names_in_the_table_the_csv_and_the_help(tmp_path, model_folder, monkeypatch, capsys):
    """The quadrants' spread of 1/d has its unit; b_factor is said to be the label relation's B, not a Wilson B; the CSV
    has one value per cell, a column per quadrant for the per-quadrant lists."""
    monkeypatch.chdir(tmp_path)
    paths = _images(tmp_path, 2)
    assert resolution_program(paths + ["predictors=resolution,multilattice_resnet", "output.csv=r.csv",
                                       "output.json=r.json", "output.plot=None", "output.log=None"]) == 0
    assert "spread/Å⁻¹" in capsys.readouterr().out
    images = json.loads((tmp_path / "r.json").read_text())["images"]
    with open(tmp_path / "r.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    header = list(table[0])
    assert [c for c in header if c.startswith("d_quadrants")] == [f"d_quadrants_{q}" for q in range(4)]
    assert [c for c in header if c.startswith("p_multilattice_resnet_quadrants")] == ["p_multilattice_resnet_quadrants_0"]
    assert not any(";" in cell for row in table for cell in row.values())
    for row, image in zip(table, images):
        assert [float(row[f"inverse_d_quadrants_{q}"]) for q in range(4)] == \
            pytest.approx(image["inverse_d_quadrants"], rel=1e-6)
        assert float(row["p_multilattice_resnet_quadrants_0"]) == pytest.approx(
            image["p_multilattice_resnet_quadrants"][0])
    assert resolution_program(["-h"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "B = 4d² + 12 at d_min, not a Wilson B" in help_text


def test_program_reports_each_failed_image_once_on_stderr(tmp_path, model_folder, monkeypatch, capsys):
    """Issue 18, item 2: a file that cannot be read is one warning line on stderr and in the log
    (besides its row of the table and its error in the JSON), not two or three."""
    monkeypatch.chdir(tmp_path)
    (good,) = _images(tmp_path, count=1)
    truncated = tmp_path / "cut_0002.cbf"
    truncated.write_bytes(open(good, "rb").read()[:3000])
    (tmp_path / "junk_0003.cbf").write_bytes(b"GIF89a not a diffraction image" * 10)
    names = ("cut_0002.cbf", "junk_0003.cbf", "missing_0004.cbf")
    assert resolution_program([good, *names, "output.plot=None", "output.log=run.log"]) == 1
    captured = capsys.readouterr()
    log_lines = (tmp_path / "run.log").read_text().splitlines()
    for name in names:
        assert sum(name in line for line in captured.err.splitlines()) == 1, (name, captured.err)
        assert sum(line.startswith(name) for line in captured.out.splitlines()) == 1  # its row of the table
        assert sum(name in line and " WARNING " in line for line in log_lines) == 1
    document = json.loads((tmp_path / "xrais_resolution.json").read_text())
    assert [bool(r["error"]) for r in document["images"]] == [False, True, True, True]


def _mpiexec():
    local = os.path.join(os.path.dirname(sys.executable), "mpiexec")
    return local if os.path.exists(local) else shutil.which("mpiexec")


@pytest.mark.skipif(_mpiexec() is None, reason="mpiexec not installed")
def test_mpi_gathers_results_in_image_order(tmp_path, model_folder):
    paths = _images(tmp_path, 5)
    command = [_mpiexec(), "-n", "2", sys.executable, "-m", "xrais.command_line.predict", *paths, "mpi=True",
               "predictors=resolution,multilattice", "output.json=mpi.json", "output.plot=None", "output.log=None"]
    env = dict(os.environ, XRAIS_MODELS=str(model_folder), OMP_NUM_THREADS="1")
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    gathered = json.loads((tmp_path / "mpi.json").read_text())["images"]
    serial = Predictor(device="cpu").predict(paths)
    assert [r["image"] for r in gathered] == paths
    _assert_same_predictions(gathered, serial)


def test_third_party_plugin_is_discovered_and_runs(tmp_path):
    """examples/plugin_example installed into its own folder: listed by xrais.plugins and run by the
    program beside a built-in predictor, without touching xrais."""
    target = tmp_path / "site"
    example = os.path.join(os.path.dirname(__file__), "..", "examples", "plugin_example")
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                              "--target", str(target), example], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr
    env = dict(os.environ, PYTHONPATH=str(target))
    listing = subprocess.run([sys.executable, "-m", "xrais.command_line.plugins", "output.json=plugins.json",
                              "output.log=None"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    names = [p["name"] for p in json.loads((tmp_path / "plugins.json").read_text())["predictors"]]
    assert "ice_rings" in names and "resolution" in names
    # An image with a strong ice ring at 3.669 Å, and one without.
    geometry = Geometry(distance=150.0, wavelength=1.0, pixel_size=0.172, beam_centre=(300.0, 300.0), shape=(600, 600))
    ss, ff = np.indices((600, 600)) + 0.5
    inverse_d = geometry.inverse_d_at(np.hypot(ff - 300, ss - 300))
    rng = np.random.default_rng(0)
    ring = rng.poisson(10 + 60 * np.exp(-((inverse_d - 1 / 3.669) / 0.002) ** 2)).astype(np.int32)
    write_cbf(str(tmp_path / "ice.cbf"), ring, geometry)
    write_cbf(str(tmp_path / "clean.cbf"), rng.poisson(10, (600, 600)).astype(np.int32), geometry)
    run = subprocess.run([sys.executable, "-m", "xrais.command_line.predict", "ice.cbf", "clean.cbf",
                          "predictors=ice_rings,spots", "output.json=ice.json", "output.plot=None", "output.log=None"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    rows = json.loads((tmp_path / "ice.json").read_text())["images"]
    assert [r["ice_rings"] for r in rows] == [True, False]
    assert all("n_spots" in r for r in rows)


def test_a_run_where_every_image_fails_prints_only_xrais_lines(tmp_path):
    """Issue 32: no third-party warning (matplotlib's empty legend, numpy's empty means) reaches the
    terminal when every image of a run fails: stderr holds one line per bad image and the tally."""
    import subprocess
    import sys

    for name in ("a.cbf", "b.cbf"):
        (tmp_path / name).write_text("not an image\n")
    run = subprocess.run([sys.executable, "-c", "from xrais.command_line.predict import run_resolution; run_resolution()",
                          "a.cbf", "b.cbf", "predictors=resolution,multilattice,spots"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert run.returncode == 1
    lines = run.stderr.strip().splitlines()
    assert lines[:2] == [f"{name}: unknown image format (supported: DIALS .expt, NeXus, miniCBF, imgCIF, SMV, MarCCD)"
                         for name in ("a.cbf", "b.cbf")]
    assert lines[2:] == ["2 of 2 images could not be processed (see the error column)"], run.stderr
    assert (tmp_path / "xrais_resolution.png").is_file()


def test_a_small_detector_frame_is_analysed_by_every_predictor_that_can(shared_data):
    """Issues 34 (item 3) and 30: cuts of a measured PILATUS3 6M frame as a PILATUS 300K (487 × 619
    pixels, max-pool 1) and a PILATUS 100K (487 × 195) would record them. On both every predictor
    answers, the resolution network within 0.1 Å⁻¹ of the spot-based estimate (both at the cut's
    reach: it sees no further). On a 100 × 100 cut, too small for the network (quadrants of 50
    pixels, below its card's 60), the whole-frame predictors answer (the spot count, the lattice
    evidence's reason for giving no probability), the network gives null with its reason in
    ``not_analysed``, and the image is no error. With the network alone it is."""
    import dataclasses

    from xrais.io import Frame, open_images

    frame = next(iter(open_images([str(shared_data / "thaumatin_grid" / "thau_3_2_0003.cbf.bz2")])))
    beam_fast, beam_slow = frame.geometry.beam_centre

    def cut(shape, detector):
        fast0, slow0 = int(beam_fast) - shape[1] // 2, int(beam_slow) - shape[0] // 2
        part = (slice(slow0, slow0 + shape[0]), slice(fast0, fast0 + shape[1]))
        geometry = dataclasses.replace(frame.geometry, shape=shape, beam_centre=(beam_fast - fast0, beam_slow - slow0),
                                       detector=detector, downsample=1)
        return Frame(frame.pixels[part], frame.mask[part], geometry, source=detector)

    every = ("resolution", "spots", "decay", "indexing", "multilattice")
    pilatus_300k, pilatus_100k, tiny = Predictor(predictors=every, device="cpu").predict(
        [cut((619, 487), "PILATUS 300K"), cut((195, 487), "PILATUS 100K"), cut((100, 100), "tiny")])
    for small in (pilatus_300k, pilatus_100k):
        assert small["error"] is None and small["not_analysed"] is None
        assert abs(small["inverse_d"] - 1.0 / small["d_min_spots"]) < 0.1
    assert pilatus_300k["n_spots"] > 30 and pilatus_300k["n_lattices_indexed"] >= 1
    assert pilatus_100k["n_spots"] > 10
    assert tiny["error"] is None
    assert tiny["d_min"] is None and tiny["not_analysed"].startswith("resolution: image too small")
    assert tiny["n_spots"] is not None  # the spot finder reads it: 1 spot, by the beamstop
    assert tiny["multilattice_undetermined"].startswith("no lattice indexed")
    (alone,) = Predictor(predictors=("resolution",), device="cpu").predict([cut((100, 100), "tiny")])
    assert alone["error"].startswith("image too small to analyse") and alone["not_analysed"] is None


def test_a_swung_detector_frame_is_analysed_by_every_predictor_that_can(shared_data):
    """Issue 34 item 1: the real PILATUS 300K frame at 2θ = 20° (reader_cases §1b). The spots, the
    decay fit, the indexing (the crystal's primitive 44.7 Å cell) and the shell-profile model (the
    whole frame's shells, reported undetermined until swung frames of known resolution show it right)
    answer; the ResNets, which read beam-centred quadrants, give null with the reason in
    ``not_analysed``; the image is no error."""
    every = ("resolution", "spots", "decay", "indexing", "multilattice", "multilattice_resnet")
    (row,) = Predictor(predictors=every, device="cpu").predict(
        [str(shared_data / "reader_cases" / "ximg2700_00001.cbf.gz")])
    assert row["error"] is None
    assert row["not_analysed"].startswith("multilattice_resnet: detector tilted 20.0° to the beam")
    assert row["p_multilattice_resnet"] is None
    assert row["inverse_d"] is not None and row["inverse_d_sigma"] is not None
    assert row["resolution_undetermined"] is True  # swung frames: a hint, not yet a validated answer
    assert row["d_quadrants"] == [None] * 4
    assert row["n_spots"] > 100 and row["d_min_spots"] < 1.5
    assert row["n_lattices_indexed"] >= 1 and row["cell_indexed"][0] == pytest.approx(44.67, rel=0.01)
    (alone,) = Predictor(predictors=("multilattice_resnet",), device="cpu").predict(
        [str(shared_data / "reader_cases" / "ximg2700_00001.cbf.gz")])
    assert "beam-centred quadrants" in alone["error"]
