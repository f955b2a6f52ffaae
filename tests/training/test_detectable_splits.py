"""Which simulated splits the lattice-evidence network is trained on (xrais.training.evidence):
those its spots can show, a misorientation beyond the crystal's own spread."""
import numpy as np

from xrais.training.evidence import DETECTABLE_SPLIT_MOSAIC, detectable_rows


def test_splits_inside_the_crystals_spread_are_left_out_and_single_crystals_kept():
    is_multi = np.array([False, False, True, True, True, True])
    split = np.array([0.0, 0.0, 0.3, 1.0, 2.0, 10.0])  # degrees
    mosaic = np.array([0.5, 0.02, 0.05, 0.5, 0.5, 0.5])  # degrees, the largest domain rotation
    kept = detectable_rows(is_multi, split, mosaic)
    # singles of any spread; a 0.3° split of a 0.05° crystal (6×) and 2°, 10° of a 0.5° one (4×, 20×)
    assert kept.tolist() == [True, True, True, False, True, True]
    assert DETECTABLE_SPLIT_MOSAIC * 0.5 > 1.0  # the 1° split of a 0.5° crystal: its lattices overlap
    assert detectable_rows(is_multi, split, mosaic, multiple=0.0).all()
    assert detectable_rows(is_multi, split, mosaic, multiple=5.0).tolist() == [True, True, True, False, False, True]
