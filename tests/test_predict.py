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


@pytest.fixture()
def model_folder(tmp_path, monkeypatch):
    """Tiny 'resolution' (constant radius 120 downsampled px) and random 'multilattice' models."""
    folder = tmp_path / "models"
    models.export(_tiny("resolution", constant_radius=120.0), folder / "resolution")
    models.export(_tiny("multilattice", seed=1), folder / "multilattice")
    monkeypatch.setenv("XRAIS_MODELS", str(folder))
    plugins.predictors.cache_clear()  # fresh predictor objects load the models above
    yield folder
    plugins.predictors.cache_clear()


def _images(folder, count=3, seed=0):
    rng = np.random.default_rng(seed)
    paths = []
    for k in range(count):
        pixels = rng.poisson(5 + 10 * k, SHAPE).astype(np.int32)
        path = folder / f"img_{k:04d}.cbf"
        write_cbf(str(path), pixels, GEOMETRY)
        paths.append(str(path))
    return paths


def test_results_in_order_with_errors_and_designed_values(tmp_path, model_folder):
    paths = _images(tmp_path)
    bad = tmp_path / "img_0001b.cbf"
    bad.write_bytes(open(paths[0], "rb").read()[:3000])
    inputs = [paths[0], str(bad), paths[1], paths[2]]
    results = Predictor(device="cpu").predict(inputs)
    assert [r["image"] for r in results] == inputs
    assert results[1]["error"] and "truncated" in results[1]["error"] and results[1]["d_min"] is None
    expected_inverse_d = float(GEOMETRY.inverse_d_at(120.0 * 2))  # 120 downsampled px × factor 2
    for r in (results[0], results[2], results[3]):
        assert r["error"] is None
        assert r["inverse_d_quadrants"] == pytest.approx([expected_inverse_d] * 4, rel=1e-4)
        assert r["d_min"] == pytest.approx(1 / expected_inverse_d, rel=1e-3)
        assert r["d_quadrants"] == pytest.approx([1 / expected_inverse_d] * 4, rel=1e-3)
        assert r["b_factor"] == pytest.approx(4 * (1 / expected_inverse_d) ** 2 + 12, rel=1e-3)
        assert r["diffraction"] is True and 0 <= r["p_multilattice"] <= 1 and len(r["p_multilattice_quadrants"]) == 4
    assert list(results[0]) == list(Predictor(device="cpu").fields)


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
    network = models.load("multilattice", device="cpu")
    direct = network.predict(condition(pixels, None, GEOMETRY), GEOMETRY)
    (from_array,) = Predictor(predictors=("multilattice",), device="cpu").predict([(pixels, GEOMETRY)])
    assert from_array["p_multilattice_quadrants"] == pytest.approx(direct.tolist(), abs=1e-4)
    assert from_array["p_multilattice"] == pytest.approx(float(direct.mean()), abs=1e-4)
    frame = xrais.open_image(_images(tmp_path, 1)[0])
    (one,) = Predictor(predictors=("resolution",), device="cpu", quadrants=1).predict([frame])
    assert len(one["d_quadrants"]) == 1 and one["image"] == frame.source


def test_threads_and_concurrent_callers_agree(tmp_path, model_folder):
    paths = _images(tmp_path, 4)
    serial = Predictor(device="cpu", batch_size=3).predict(paths)
    threaded = Predictor(device="cpu", nproc=2, batch_size=2).predict(paths)
    strip = lambda rs: [{k: v for k, v in r.items() if not k.endswith("_ms")} for r in rs]  # noqa: E731
    assert strip(threaded) == strip(serial)
    shared = Predictor(device="cpu")
    outputs = [None, None]

    def call(slot):
        outputs[slot] = strip(shared.predict(paths))

    workers = [threading.Thread(target=call, args=(k,)) for k in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert outputs[0] == outputs[1] == strip(serial)


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
    assert set(row) <= set(table[0]) and len(table) == 3
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
    for a, b in zip(gathered, serial):
        assert a["d_min"] == pytest.approx(b["d_min"]) and a["p_multilattice"] == pytest.approx(b["p_multilattice"], abs=1e-4)


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
