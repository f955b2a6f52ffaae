"""Maximum-composite images (paper Figures 7, 9, 15): selection and per-pixel maximum."""
import json

import numpy as np
import pytest

import xrais
from xrais.command_line.max_composite import program as max_composite_program
from xrais.composite import Selection, max_composite
from xrais.io import Frame, FrameError, Geometry, ImageError
from xrais.io.cbf import write_cbf

GEOMETRY = Geometry(distance=150, wavelength=1.0, pixel_size=0.172, beam_centre=(30.0, 20.0), shape=(40, 60),
                    detector="PILATUS 6M", downsample=2)


def _frame(seed, masked=()):
    pixels = np.random.default_rng(seed).integers(0, 1000, GEOMETRY.shape).astype(np.int32)
    mask = np.zeros(GEOMETRY.shape, bool)
    for s, f in masked:
        mask[s, f] = True
    return Frame(pixels, mask, GEOMETRY, source=f"img{seed}.cbf")


def test_composite_is_the_valid_maximum_and_masks_only_where_always_invalid():
    frames = [_frame(1, masked=[(0, 0), (5, 5)]), _frame(2, masked=[(0, 0)]), FrameError("bad.cbf", None, "corrupt")]
    frames[0].pixels[5, 5] = 10**6  # masked: must not win
    composite, used = max_composite(frames)
    assert used == 2
    expected = np.maximum(np.where(frames[0].mask, -1, frames[0].pixels), frames[1].pixels)
    assert composite.mask[0, 0] and composite.mask.sum() == 1 and composite.pixels[0, 0] == -1
    np.testing.assert_array_equal(composite.pixels[~composite.mask], expected[~composite.mask])
    assert composite.pixels[5, 5] == frames[1].pixels[5, 5]


def test_composite_refuses_mixed_detectors():
    other = Frame(np.zeros((10, 10), np.int32), np.zeros((10, 10), bool),
                  Geometry(distance=150, wavelength=1, pixel_size=0.1, beam_centre=(5, 5), shape=(10, 10)), source="x.cbf")
    with pytest.raises(ImageError, match="one detector"):
        max_composite([_frame(1), other])


def test_selection_by_resolution_probability_and_position():
    results = [{"image": "a", "d_min": 1.5, "p_multilattice": 0.9}, {"image": "b", "d_min": 2.5, "p_multilattice": 0.1},
               {"image": "c", "d_min": None, "diffraction": False}, {"image": "d", "error": "corrupt"},
               {"image": "e", "d_min": 1.9, "p_multilattice": 0.6}]
    pick = lambda sel: [r["image"] for r in sel.chosen(results)]  # noqa: E731
    assert pick(Selection(d_range=(1.4, 2.0))) == ["a", "e"]
    assert pick(Selection(p_range=(0.5, 1.0))) == ["a", "e"]
    assert pick(Selection(index_range=(1, 3))) == ["b", "c"]
    assert pick(Selection()) == ["a", "b", "c", "e"]


def test_program_from_a_results_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    frames = [_frame(k) for k in range(3)]
    results = []
    for k, frame in enumerate(frames):
        path = tmp_path / f"img{k}.cbf"
        write_cbf(str(path), frame.pixels, GEOMETRY)
        results.append({"image": str(path), "frame": 0, "d_min": [1.6, 3.0, 1.8][k], "error": None})
    (tmp_path / "results.json").write_text(json.dumps({"images": results, "summary": {}}))
    code = max_composite_program(["results=results.json", "select.d=1.5,2.0", "output.image=comp.cbf",
                                  "output.png=comp.png", "output.log=None"])
    assert code == 0
    composite = xrais.open_image(tmp_path / "comp.cbf")
    np.testing.assert_array_equal(composite.pixels, np.maximum(frames[0].pixels, frames[2].pixels))
    assert (tmp_path / "comp.png").stat().st_size > 5000
    assert max_composite_program(["results=results.json", "select.d=5,6", "output.log=None"]) == 1
