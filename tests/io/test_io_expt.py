"""DIALS .expt reader: the real DIALS model beside the Rayonix image, and written experiment lists
(template sequences, multi-image NeXus files, hierarchical multi-panel detectors)."""
import json
import math

import numpy as np
import pytest

from iohelpers import cbflib_panels, write_eiger
from xrais.io import FrameError, Geometry, ImageError, identify, open_image, open_images
from xrais.io.assemble import PanelGeometry
from xrais.io.smv import write_smv



def _panel_dict(panel: PanelGeometry, trusted=(-1.0, 1e6)):
    return {"name": panel.name, "type": "SENSOR_PAD", "origin": list(panel.origin), "fast_axis": list(panel.fast_axis),
            "slow_axis": list(panel.slow_axis), "pixel_size": list(panel.pixel_size),
            "image_size": [panel.shape[1], panel.shape[0]], "trusted_range": list(trusted), "mask": []}


def _flat_panel(distance, beam_centre, pixel, shape, name="Panel"):
    """A dxtbx panel perpendicular to the beam (−z) with the beam at beam_centre (fast, slow) px."""
    return PanelGeometry((-beam_centre[0] * pixel, beam_centre[1] * pixel, -distance), (1.0, 0, 0), (0, -1.0, 0),
                         (pixel, pixel), shape, name)


def _document(imageset, panels, wavelength=1.0, hierarchy=None, scan=None, trusted=(-1.0, 1e6)):
    detector = {"panels": [_panel_dict(p, trusted) for p in panels]}
    if hierarchy is not None:
        detector["hierarchy"] = hierarchy
    experiment = {"__id__": "Experiment", "beam": 0, "detector": 0, "imageset": 0}
    document = {"__id__": "ExperimentList", "experiment": [experiment, dict(experiment)], "imageset": [imageset],
                "beam": [{"direction": [0.0, 0.0, 1.0], "wavelength": wavelength}], "detector": [detector]}
    if scan is not None:
        experiment["scan"] = 0
        document["scan"] = [scan]
    return document


def _write(path, document):
    path.write_text(json.dumps(document, indent=2))
    return path


def test_real_dials_model_gives_its_geometry_to_the_image(shared_data, tmp_path):
    model = json.loads((shared_data / "rayonix340" / "experiments_000.json").read_text())
    model["imageset"][0]["images"] = [str(shared_data / "rayonix340" / "hit-20181213155134902.cbf")]
    path = _write(tmp_path / "rayonix.json", model)  # the DIALS name: .json, identified by content
    assert identify(str(path)).name == "DIALS .expt"
    (frame,) = list(open_images(path, on_error="raise"))
    g = frame.geometry
    assert g.distance == pytest.approx(123.54552513647172) and g.wavelength == pytest.approx(1.30032587171)
    assert g.beam_centre == pytest.approx((169.941607185545 / 0.177083333333, 170.0673532636642 / 0.177083333333))
    assert g.beam_centre == pytest.approx((959.67, 960.38), abs=0.01)
    assert g.detector == "Rayonix MX340-HS 4x4"
    image = shared_data / "rayonix340" / "hit-20181213155134902.cbf"
    np.testing.assert_array_equal(frame.pixels, open_image(image).pixels)
    assert frame.source.endswith("hit-20181213155134902.cbf") and frame.metadata["expt"] == str(path)


def test_real_dials_model_names_a_missing_image(shared_data):
    (item,) = list(open_images(shared_data / "rayonix340" / "experiments_000.json", on_error="yield"))
    assert isinstance(item, FrameError) and item.source.endswith("idx-20181211002948350.cbf")
    assert item.message == "no such file"


def test_template_sequence_takes_the_expt_geometry(tmp_path, monkeypatch):
    images = tmp_path / "images"
    images.mkdir()
    header = Geometry(distance=300.0, wavelength=1.5, pixel_size=0.1, beam_centre=(10.0, 10.0), shape=(80, 100))
    rng = np.random.default_rng(0)
    for number in (1, 2, 3, 5):
        write_smv(str(images / f"lyso_1_{number:05d}.img"), rng.poisson(5, (80, 100)), header)
    panel = _flat_panel(150.0, (48.5, 41.25), 0.1, (80, 100))
    document = _document({"__id__": "ImageSequence", "template": "images/lyso_1_#####.img"}, [panel], wavelength=0.9,
                         scan={"image_range": [1, 6], "oscillation": [0.0, 0.1]})
    path = _write(tmp_path / "sweep.expt", document)
    monkeypatch.chdir(images)  # paths in the .expt are relative to the .expt's folder
    items = list(open_images(path, on_error="yield"))
    assert [type(item).__name__ for item in items] == ["Frame", "Frame", "Frame", "FrameError", "Frame", "FrameError"]
    assert items[3].message == "images 4…4 of the template do not exist" and "lyso_1_#####.img" in items[3].source
    assert items[5].message == "images 6…6 of the template do not exist"
    g = items[0].geometry
    assert (g.distance, g.wavelength, g.pixel_size) == pytest.approx((150.0, 0.9, 0.1))
    assert g.beam_centre == pytest.approx((48.5, 41.25))
    assert items[4].source.endswith("lyso_1_00005.img")
    with_override = next(open_images(path, geometry={"distance": 200.0}))
    assert with_override.geometry.distance == 200.0 and with_override.geometry.wavelength == pytest.approx(0.9)


def test_trusted_range_masks_on_top_of_the_image_mask(tmp_path):
    pixels = np.arange(80 * 100).reshape(80, 100) % 300
    pixels[0, 0] = 65535
    header = Geometry(distance=300.0, wavelength=1.5, pixel_size=0.1, beam_centre=(10.0, 10.0), shape=(80, 100))
    write_smv(str(tmp_path / "one.img"), pixels, header)
    document = _document({"__id__": "ImageSet", "images": ["one.img"]}, [_flat_panel(150.0, (50, 40), 0.1, (80, 100))],
                         trusted=(0.0, 200.0))
    frame = open_image(_write(tmp_path / "one.expt", document))
    np.testing.assert_array_equal(frame.mask, (pixels > 200) | (pixels == 65535))


def test_multi_image_nexus_file_with_single_file_indices(tmp_path):
    frames = np.random.default_rng(2).poisson(3, (3, 60, 70)).astype(np.uint16)
    write_eiger(str(tmp_path / "x_master.h5"), frames, beam_px=(10.0, 10.0), distance_mm=300.0)
    panel = _flat_panel(120.0, (35.0, 30.0), 0.075, (60, 70))
    document = _document({"__id__": "ImageSet", "images": ["x_master.h5", "x_master.h5"],
                          "single_file_indices": [0, 2]}, [panel], wavelength=0.8)
    items = list(open_images(_write(tmp_path / "stills.expt", document), on_error="raise"))
    assert [f.index for f in items] == [0, 2]
    np.testing.assert_array_equal(items[1].pixels, frames[2])
    assert items[1].geometry.distance == pytest.approx(120.0) and items[1].geometry.beam_centre == pytest.approx((35, 30))
    assert items[1].label.endswith("x_master.h5:2")


def _hierarchy_for(panels, rotation_deg=90.0, shift=(3.0, -2.0, -1.5)):
    """A hierarchy group (rotated about z, shifted) holding the panels in its local frame."""
    c, s = math.cos(math.radians(rotation_deg)), math.sin(math.radians(rotation_deg))
    fast, slow, origin = np.array([c, s, 0.0]), np.array([-s, c, 0.0]), np.array(shift)
    orientation = np.column_stack([fast, slow, np.cross(fast, slow)])
    local = [PanelGeometry(tuple(orientation.T @ (np.array(p.origin) - origin)), tuple(orientation.T @ p.fast_axis),
                           tuple(orientation.T @ p.slow_axis), p.pixel_size, p.shape, p.name) for p in panels]
    group = {"name": "quadrants", "origin": list(origin), "fast_axis": list(fast), "slow_axis": list(slow),
             "children": [{"panel": k} for k in range(len(panels))]}
    root = {"name": "", "origin": [0, 0, 0], "fast_axis": [1, 0, 0], "slow_axis": [0, 1, 0], "children": [group]}
    return local, root


def test_hierarchical_multi_panel_detector_matches_the_image_geometry(shared_data, tmp_path):
    cspad = shared_data / "thermolysin_cspad" / "idx-20130301060858401.cbf"
    reference = open_image(cspad)
    _, panels, _ = cbflib_panels(cspad)
    local, hierarchy = _hierarchy_for(panels)
    order = np.random.default_rng(4).permutation(len(local))  # panels matched by name, not order
    hierarchy["children"][0]["children"] = [{"panel": int(k)} for k in np.argsort(order)]
    document = _document({"__id__": "ImageSet", "images": [str(cspad)]}, [local[k] for k in order],
                         wavelength=reference.geometry.wavelength, hierarchy=hierarchy, trusted=(-400.0, 90000.0))
    frame = open_image(_write(tmp_path / "cspad.expt", document))
    np.testing.assert_array_equal(frame.pixels, reference.pixels)
    assert frame.geometry.beam_centre == pytest.approx(reference.geometry.beam_centre, abs=1e-6)
    assert frame.geometry.distance == pytest.approx(reference.geometry.distance)
    assert frame.metadata["panels"] == 64
    assert abs(int(frame.mask.sum()) - int(reference.mask.sum())) <= 2  # trusted range inclusive vs CBF's exclusive


def test_multi_panel_model_for_a_single_panel_image(shared_data, tmp_path):
    header = Geometry(distance=300.0, wavelength=1.5, pixel_size=0.1, beam_centre=(10.0, 10.0), shape=(80, 100))
    write_smv(str(tmp_path / "one.img"), np.zeros((80, 100)), header)
    panels = [_flat_panel(150.0, (50, 40), 0.1, (40, 100), "top"), _flat_panel(150.0, (50, 0), 0.1, (40, 100), "bottom")]
    (item,) = list(open_images(_write(tmp_path / "two.expt", _document({"__id__": "ImageSet", "images": ["one.img"]},
                                                                        panels)), on_error="yield"))
    assert isinstance(item, FrameError) and "describes 2 panels but SMV images hold one" in item.message


@pytest.mark.parametrize("edit, problem", [
    (lambda d: d.update(beam=[]), "refers to beam 0, which the list does not hold"),
    (lambda d: d["imageset"][0].update({"__id__": "MemImageSet"}), "unsupported image set type 'MemImageSet'"),
    (lambda d: d["detector"][0]["panels"][0].update(fast_axis=[1, "x", 0]), "fast_axis is not a list of numbers"),
    (lambda d: d["detector"][0]["panels"][0].update(origin=[0, 0, 10]), "not downstream of the sample"),
    (lambda d: d["beam"][0].update(wavelength=0.0), "wavelength = 0 Å makes no sense"),
    (lambda d: d.update(experiment="none"), "has no 'experiment' list"),
    (lambda d: d["imageset"][0].update({"__id__": "ImageSequence", "template": "a_####.img"}), "has no scan image_range"),
])
def test_bad_experiment_lists_give_one_clear_error(tmp_path, edit, problem):
    document = _document({"__id__": "ImageSet", "images": ["one.img"]}, [_flat_panel(150.0, (50, 40), 0.1, (80, 100))])
    header = Geometry(distance=300.0, wavelength=1.5, pixel_size=0.1, beam_centre=(10.0, 10.0), shape=(80, 100))
    write_smv(str(tmp_path / "one.img"), np.zeros((80, 100)), header)
    edit(document)
    with pytest.raises(ImageError, match=problem):
        list(open_images(_write(tmp_path / "bad.expt", document), on_error="raise"))


def test_absurd_image_range_and_broken_json(tmp_path):
    document = _document({"__id__": "ImageSequence", "template": "a_####.img"},
                         [_flat_panel(150.0, (50, 40), 0.1, (80, 100))], scan={"image_range": [1, 10 ** 9]})
    with pytest.raises(ImageError, match="image_range .* makes no sense"):
        open_image(_write(tmp_path / "long.expt", document))
    broken = tmp_path / "broken.expt"
    broken.write_text('{"__id__": "ExperimentList", "experiment": [')
    with pytest.raises(ImageError, match="not a readable experiment list \\(JSON: "):
        open_image(broken)


def test_swung_detector_model_of_dials_is_read_with_its_orientation(shared_data, tmp_path):
    """DIALS's refined model of the L-cysteine frame (reader_cases/README.md §1: 2θ 29.6°, fast axis
    vertical, the beam tilted 0.11°) gives the frame that orientation: the beam meets the detector
    at (191.8, 866.1) px, 161.54 mm from the sample, as DIALS states."""
    image = shared_data / "reader_cases" / "l-cyst_01_00001.cbf.gz"
    panel = PanelGeometry((-148.56, -28.82, -202.26), (-0.0014, 0.8694, 0.4941), (1.0000, 0.0010, 0.0011),
                          (0.172, 0.172), (1679, 1475))
    document = _document({"__id__": "ImageSequence", "template": str(image).replace("00001", "#####"),
                          "single_file_indices": None}, [panel], wavelength=0.6889,
                         scan={"image_range": [1, 1], "oscillation": [-145.0, 0.1]})
    document["beam"][0]["direction"] = [-0.00194, 0.0, 1.0]
    (frame,) = list(open_images(_write(tmp_path / "indexed.expt", document), on_error="raise"))
    geometry = frame.geometry
    assert geometry.tilt_deg == pytest.approx(29.6, abs=0.1)
    assert geometry.distance == pytest.approx(161.54, abs=0.05)
    assert geometry.beam_centre == pytest.approx((191.8, 866.1), abs=0.3)
    assert geometry.perpendicular_foot == pytest.approx((725.5, 865.2), abs=0.3)
