"""Semi-real two-lattice images (xrais.training.semireal): a frame plus a copy turned about the beam."""
import numpy as np
import pytest

import xrais
from xrais.io import Frame, Geometry
from xrais.lattice import index_frame
from xrais.training.semireal import semireal_pairs, turned_copy


def _frame_with_one_spot():
    geometry = Geometry(distance=200.0, wavelength=1.0, pixel_size=0.1, beam_centre=(50.0, 40.0), shape=(80, 100))
    pixels = np.zeros((80, 100), np.int32)
    pixels[40, 70] = 1000  # centre (70.5, 40.5): 20.5 px along fast from the beam centre (0.5 along slow)
    mask = np.zeros_like(pixels, bool)
    mask[5, 5] = True
    return Frame(pixels, mask, geometry, source="spot.cbf")


def test_a_quarter_turn_moves_a_spot_from_the_fast_to_the_slow_axis_with_its_photons():
    frame = _frame_with_one_spot()
    turned = turned_copy(frame, 90.0, 1.0, np.random.default_rng(0))
    # (+20.5, +0.5) px from the beam centre turned by 90° → (−0.5, +20.5): pixel (fast 49, slow 60)
    assert turned.pixels[60, 49] == 1000 and turned.pixels[40, 70] == 1000
    assert turned.pixels.sum() == 2000
    assert turned.mask[5, 5] and turned.mask.sum() == 1
    assert turned.metadata["semireal"] == {"angle_deg": 90.0, "weight": 1.0, "source": "spot.cbf"}


def test_thinning_keeps_each_photon_with_the_weight():
    frame = _frame_with_one_spot()
    copies = [turned_copy(frame, 90.0, 0.3, np.random.default_rng(seed)).pixels[60, 49] for seed in range(200)]
    # binomial(1000, 0.3): mean 300, σ of the mean over 200 draws ≈ 1.0
    assert abs(np.mean(copies) - 300.0) < 5.0
    assert np.std(copies) == pytest.approx(np.sqrt(1000 * 0.3 * 0.7), rel=0.2)
    with pytest.raises(ValueError, match="weight"):
        turned_copy(frame, 10.0, 0.0, np.random.default_rng(0))


def test_masked_pixels_stay_masked_and_add_nothing_to_the_copy():
    frame = _frame_with_one_spot()
    frame.mask[40, 70] = True  # the spot's pixel invalid: its copy must not appear
    turned = turned_copy(frame, 90.0, 1.0, np.random.default_rng(0))
    assert turned.pixels[60, 49] == 0 and turned.mask[40, 70]


def test_a_measured_single_crystal_and_its_turned_copy_index_as_two_lattices_that_far_apart(shared_data):
    """On the real DLS I03 frame (one crystal, one lattice), a copy turned 5° about the beam gives
    a second lattice of the same cell 5° from the first: the construction is a physical second
    crystal, as the indexing sees it."""
    frame = xrais.open_image(shared_data / "image_examples" / "DLS_I03_smargon_0001.cbf.gz")
    single = index_frame(frame.pixels, frame.mask, frame.geometry)
    assert single.n_lattices == 1
    (angle, weight, pair), = semireal_pairs(frame, [5.0], [1.0])
    double = index_frame(pair.pixels, pair.mask, pair.geometry)
    assert double.n_lattices == 2
    assert double.misorientation_deg()[0] == pytest.approx(5.0, abs=0.1)
    assert np.allclose(sorted(double.lattices[1].cell[:3]), sorted(single.lattices[0].cell[:3]), rtol=0.02)
