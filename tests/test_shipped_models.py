"""The shipped models: they load (hash + architecture checked), carry model cards, and behave on
real data as the method requires — the thaumatin grid scan of shared/data (19 PILATUS3 6M stills):
blank frames 0016–0019 are no diffraction (or d_min > 5 Å), frame 0003 is among the three best,
and the predicted 1/d follows the visible diffraction strength from frame to frame."""
import json
import shlex

import numpy as np
import pytest

from xrais import examples, models, plugins
from xrais.command_line import train as train_program
from xrais.predict import Predictor
from xrais.spotfinder import analyse_image
from xrais.training.metrics import spearman


@pytest.fixture(scope="module", autouse=True)
def shipped_models_only():
    """Use the models inside the package (not an XRAIS_MODELS folder a developer may have set)."""
    patch = pytest.MonkeyPatch()
    patch.delenv("XRAIS_MODELS", raising=False)
    plugins.predictors.cache_clear()
    yield
    patch.undo()
    plugins.predictors.cache_clear()


@pytest.mark.parametrize("name", ["resolution", "resolution_resnet", "multilattice_resnet"])
def test_shipped_model_loads_with_its_card(name):
    model = models.load(name, device="cpu")
    card = models.read_card(name)
    assert model.kind == name.split("_")[0] and card["sha256"] and card["training"]
    assert (models.WEIGHTS_DIR / f"{name}.md").read_text().count("\n") > 10
    assert (models.WEIGHTS_DIR / card["weights"]).stat().st_size <= 25 * 2**20


@pytest.mark.parametrize("name", ["resolution", "resolution_resnet", "multilattice_resnet"])
def test_card_training_command_trains_the_shipped_architecture(name):
    """The xrais.train command a card gives to reproduce its model, read as the program reads it
    (preset defaults filled in), builds the shipped network, not one the presets drifted to."""
    card = models.read_card(name)
    command = next(line for line in card["training"]["commands"] if line.startswith("xrais.train "))
    values, inputs = train_program.program.parameters.parse(shlex.split(command)[1:])
    shipped = card["architecture"]
    if shipped.get("family") == "profile":
        config = train_program.profile_config_from_params(values, inputs)
        # a card written before a field existed holds its default
        assert config.architecture == type(config.architecture).from_dict(shipped)
        return
    config = train_program.config_from_params(values, inputs).resolved(card["kind"])
    assert (config.depth, config.width, config.norm, config.dropout, config.coordinates) == (
        shipped["depth"], shipped["width"], shipped["norm"], shipped["dropout"], shipped.get("coordinates", False))


@pytest.fixture(scope="module")
def grid_scan(shared_data):
    paths = sorted((shared_data / "thaumatin_grid").glob("thau_3_2_*.cbf.bz2"))
    assert len(paths) == 19
    results = Predictor(predictors=("resolution", "spots"), device="cpu", quadrants=4, nproc=2).predict(paths)
    assert all(r["error"] is None for r in results)
    return {int(str(r["image"])[-12:-8]): r for r in results}


def test_blank_frames_are_no_diffraction(grid_scan):
    for frame in (16, 17, 18, 19):
        r = grid_scan[frame]
        assert r["diffraction"] is False or r["d_min"] > 5.0, (frame, r["d_min"])


def test_best_frame_is_among_the_three_best(grid_scan):
    ranking = sorted(grid_scan, key=lambda k: grid_scan[k]["inverse_d"], reverse=True)
    assert 3 in ranking[:3], [(k, grid_scan[k]["d_min"]) for k in ranking[:5]]


def test_resolution_follows_the_visible_diffraction(grid_scan):
    """Visible strength measured independently of the network: the spot finder's count of strong
    spots. Their rank correlation with the predicted 1/d must be strong over the scan."""
    frames = sorted(grid_scan)
    predicted = np.array([grid_scan[k]["inverse_d"] for k in frames])
    spots = np.array([grid_scan[k]["n_spots"] for k in frames], dtype=float)
    assert spearman(predicted, spots) >= 0.8


def test_example_images_against_their_true_labels():
    truth = examples.truth()
    results = {r["image"].split("/")[-1]: r for r in
               Predictor(predictors=("resolution", "multilattice"), device="cpu").predict(examples.paths())}
    for name, known in truth.items():
        r = results[name]
        if known["recipe"] != "resolution":
            continue  # the multi-lattice recipe's stills (mosaic spread ≤ 0.01°) are not what the resolution model is for
        if known["blank"]:
            assert r["diffraction"] is False or r["d_min"] > 5.0
        else:
            assert abs(r["inverse_d"] - known["inverse_d"]) < 0.15, (name, r["d_min"], known["resolution"])


def test_demo_runs_on_the_shipped_examples(tmp_path, monkeypatch):
    from xrais.command_line.demo import program as demo

    monkeypatch.chdir(tmp_path)
    assert demo(["output.directory=out", "output.log=None", "device=cpu"]) == 0
    for name in ("results.json", "results.csv", "resolution_and_multilattice.png", "example_resolution_0_quadrants.png"):
        assert (tmp_path / "out" / name).stat().st_size > 200, name


def test_every_frame_carries_its_uncertainty(grid_scan):
    """Issue 16, item 3: the shipped resolution model gives each diffracting frame a σ of its 1/d,
    calls none of the strong frames undetermined, and gives blank frames none."""
    for frame, r in grid_scan.items():
        if r["diffraction"]:
            assert 0.0 < r["inverse_d_sigma"] < 0.5 and r["inverse_d"] == pytest.approx(1.0 / r["d_min"], rel=1e-3)
        else:
            assert r["inverse_d_sigma"] is None and r["resolution_undetermined"] is False
    assert not any(grid_scan[k]["resolution_undetermined"] for k in range(2, 13))


def test_program_reports_undetermined_images_in_summary_table_and_plot(shared_data, tmp_path, monkeypatch, capsys):
    from xrais.command_line.predict import resolution_program

    monkeypatch.chdir(tmp_path)
    frames = [str(shared_data / "thaumatin_grid" / f"thau_3_2_{k:04d}.cbf.bz2") for k in (3, 15, 16)]
    assert resolution_program(frames + ["predictors=resolution", "output.plot=p.png", "output.log=None"]) == 0
    out = capsys.readouterr().out
    assert "σ(1/d)/Å⁻¹" in out and "resolution undetermined" in out
    summary = json.loads((tmp_path / "xrais_resolution.json").read_text())["summary"]
    assert summary["n_undetermined"] == sum(bool(r["resolution_undetermined"]) for r in
                                            json.loads((tmp_path / "xrais_resolution.json").read_text())["images"])
    assert (tmp_path / "p.png").stat().st_size > 1000


def test_resolution_on_the_independent_nanobragg_images(shared_data, tmp_path, monkeypatch):
    """Issue 16's targets on images xrais did not make, read with their own labels file: ≥ 80 %
    within 0.07 Å⁻¹, ≥ 90 % of those with peak_target ≥ 2500, every error beyond 0.15 Å⁻¹ flagged
    undetermined, better than the spot-finding baseline's 58.3 %."""
    from xrais.command_line.evaluate import program as evaluate_program

    monkeypatch.chdir(tmp_path)
    folder = shared_data / "nanobragg_validation" / "res"
    assert evaluate_program([str(folder / "labels.json"), "model=resolution", "quadrants=4", "output.json=nb.json",
                             "output.log=None"]) == 0
    report = json.loads((tmp_path / "nb.json").read_text())
    labels = json.loads((folder / "labels.json").read_text())
    items = report["items"]
    assert len(items) == 24 and report["metrics"]["accuracy"] >= 0.8 > 0.583
    bright = [i for i in items if labels[i["image"].split("/")[-1]]["peak_target"] >= 2500]
    assert np.mean([abs(i["prediction"] - i["label"]) <= 0.07 for i in bright]) >= 0.9
    assert report["metrics"]["large_error_unflagged"] == 0


def test_shipped_lattice_evidence_model_loads_with_its_card():
    """The lattice-evidence network loads from the registry (hash and architecture checked); the
    quadrant loader refuses it with a line that says how to use it."""
    from xrais.models.evidence import EvidenceNet
    from xrais.models.registry import ModelError, load_network

    network, card = load_network("multilattice")
    assert isinstance(network, EvidenceNet) and card["kind"] == "multilattice"
    # the card drops "experimental:" only when its own figures meet issue 29's targets
    from xrais.training.evidence import TARGETS, targets_missed

    assert {(table, key, least) for table, key, least, _ in TARGETS} == {
        ("nanobragg_validation", "auc_without_sigma_0.1deg", 0.95), ("nanobragg_validation", "accuracy_without_sigma_0.1deg", 0.90),
        ("nanobragg_rotation", "auc", 0.95), ("nanobragg_rotation", "accuracy", 0.90),
        ("held_out", "auc_split_1-3deg", 0.97), ("held_out", "auc_split_3-180deg", 0.97), ("held_out", "auc_split_0.3-1deg", 0.90),
        ("measured", "singles_called_single", 1.0), ("measured", "semireal_auc", 0.97),
        ("measured", "semireal_called_multi", 0.92)}
    measured_all = all(card["training"].get(table) is not None for table in {table for table, *_ in TARGETS})
    meets = measured_all and not targets_missed(card["training"])
    assert card["training"]["limitations"].startswith("experimental:") != meets
    assert (models.WEIGHTS_DIR / "multilattice.md").read_text().count("\n") > 10
    with pytest.raises(ModelError, match="'multilattice' predictor"):
        models.load("multilattice")


def _evidence_on_nanobragg(shared_data):
    folder = shared_data / "nanobragg_validation" / "ml"
    labels = json.loads((folder / "labels.json").read_text())
    names = sorted(labels)
    results = Predictor(predictors=("multilattice", "spots"), device="cpu").predict([str(folder / n) for n in names])
    return [labels[n] for n in names], results


def test_multilattice_evidence_on_the_independent_nanobragg_images(shared_data):
    """On the 24 nanoBragg multi-lattice images (never trained or tuned on), without the σ = 0.1°
    pairs (physically one lattice): the lattice evidence ranks multi-lattice images above single
    ones better than the spot count does (the confound a quadrant network learnt), and the
    pairs of crystals at unrelated orientations (σ = 10°) are all called multi-lattice. Measured: AUC
    0.98 (issue 17's target ≥ 0.97), spot count 0.66; the guard leaves room for one image of the 21
    ranked differently on another machine."""
    from xrais.training.metrics import roc_auc

    labels, results = _evidence_on_nanobragg(shared_data)
    kept = [(label, result) for label, result in zip(labels, results) if label.get("sigma_deg") != 0.1]
    multi = np.array([label["is_multi"] for label, _ in kept], float)
    # no lattice indexed: no answer from the evidence; ranked as undecided (0.5)
    evidence = np.array([0.5 if r["p_multilattice"] is None else r["p_multilattice"] for _, r in kept])
    spots = np.array([r["n_spots"] for _, r in kept], float)
    assert roc_auc(evidence, multi) >= 0.93 > roc_auc(spots, multi) + 0.2
    assert all(r["multilattice"] for label, r in kept if label.get("sigma_deg") == 10.0)


def test_thermolysin_stills_index_as_one_thermolysin_lattice(shared_data):
    """The four CS-PAD thermolysin stills (single crystals in the published processing): with the
    CS-PAD's gain (25 ADU per photon, the detector catalogue's) the spots of at least three index
    thermolysin's cell (P6₁22, a = b = 93.2, c = 130.3 Å; 401, 701 and 801 do, with 95–97 % of
    their spots, those in ice-ring bands included), and none grows a further lattice (leftovers of
    1–5 spots, too few to orient even a known cell). The lattice evidence's call on them
    is reported in the model card (not all single yet: issue 29)."""
    files = sorted((shared_data / "thermolysin_cspad").glob("*.cbf"))
    assert len(files) == 4
    results = Predictor(predictors=("indexing", "multilattice"), device="cpu").predict([str(f) for f in files])
    assert all(not r.get("error") for r in results)
    assert not any(r["multilattice_indexed"] for r in results)
    thermolysin = [r for r in results if r["cell_indexed"] is not None and
                   np.allclose(sorted(r["cell_indexed"][:3]), (93.2, 93.2, 130.3), rtol=0.02)]
    assert len(thermolysin) >= 3, [r["cell_indexed"] for r in results]
    assert all(r["p_multilattice"] is not None for r in thermolysin)
    unanswered = [r for r in results if r["p_multilattice"] is None]
    assert all(r["multilattice_undetermined"].startswith("no lattice indexed") for r in unanswered)


def test_multilattice_on_the_independent_nanobragg_rotation_frames(shared_data):
    """The 12 nanoBragg rotation frames (wedges 0.05–0.86°, mosaic up to 0.47°, ice on a third;
    never trained or tuned on): issue 29's AUC ≥ 0.95 (measured: 1.00, every frame called right);
    the guard leaves room for one frame ranked differently on another machine."""
    from xrais.training.metrics import roc_auc

    folder = shared_data / "nanobragg_rotation" / "ml"
    labels = json.loads((folder / "labels.json").read_text())
    names = sorted(labels)
    results = Predictor(predictors=("multilattice",), device="cpu").predict([str(folder / n) for n in names])
    multi = np.array([labels[n]["is_multi"] for n in names], float)
    scores = np.array([0.5 if r["p_multilattice"] is None else r["p_multilattice"] for r in results])
    assert roc_auc(scores, multi) >= 0.95
    assert np.mean([(r["multilattice"] is True) == bool(m) for r, m in zip(results, multi)]) >= 10 / 12


def test_a_measured_frame_and_its_turned_copy_are_told_apart(shared_data):
    """Semi-real: the measured DLS I03 frame (one crystal) and the same frame plus a copy of itself
    turned 5° about the beam (a second crystal 5° away): the pair indexes two lattices 5° apart and
    reads a higher probability than the frame alone, above the call's threshold."""
    import xrais
    from xrais.training.semireal import semireal_pairs

    frame = xrais.open_image(shared_data / "image_examples" / "DLS_I03_smargon_0001.cbf.gz")
    (_, _, pair), = semireal_pairs(frame, [5.0], [1.0])
    single, double = Predictor(predictors=("multilattice", "indexing"), device="cpu").predict([frame, pair])
    assert single["n_lattices_indexed"] == 1 and double["n_lattices_indexed"] == 2
    assert double["lattice_misorientation_deg"][0] == pytest.approx(5.0, abs=0.1)
    assert double["p_multilattice"] > max(0.5, single["p_multilattice"])


def test_measured_single_crystals_of_the_diamond_beamlines_are_called_single(shared_data):
    """The DLS I03 rotation frame and the weak EIGER2 thaumatin frame, one crystal each (each indexes
    one lattice of its own cell): called single. Both read multi-lattice (p 0.55 and 0.68) while the
    tangential features measured the spots from the indexing's cell, which the uneven excitation
    errors turn (the EIGER2 frame's by 0.64°); from the tangential cell they read p 0.14 and 0.08."""
    frames = [shared_data / "image_examples" / name for name in
              ("DLS_I03_smargon_0001.cbf.gz", "dlsnxs2cbf_therm_0001.cbf.gz")]
    results = Predictor(predictors=("multilattice", "indexing"), device="cpu").predict([str(f) for f in frames])
    assert all(r["n_lattices_indexed"] == 1 for r in results)
    assert all(r["multilattice"] is False and r["p_multilattice"] < 0.4 for r in results), \
        [r["p_multilattice"] for r in results]
