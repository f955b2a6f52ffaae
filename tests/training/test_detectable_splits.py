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


def test_each_feature_row_gets_the_mosaic_spread_of_its_image_blanks_left_out(tmp_path):
    """Feature rows are the spots files' images less the blanks, file after file; a spots file
    that does not match its feature file's row count is named."""
    import pytest

    from xrais.training.evidence import evidence_images, rows_mosaic_spread

    first, second = tmp_path / "first.npz", tmp_path / "second.npz"
    np.savez(first, label_n_lattices=np.array([1, 0, 2, 1]), label_mosaic_spread_deg=np.array([0.1, 0.2, 0.3, 0.4]))
    np.savez(second, label_n_lattices=np.array([0, 3]), label_mosaic_spread_deg=np.array([0.5, 0.6]))
    assert evidence_images(np.load(first)).tolist() == [True, False, True, True]
    assert rows_mosaic_spread([first, second], [3, 1]).tolist() == [0.1, 0.3, 0.4, 0.6]
    with pytest.raises(ValueError, match="second.npz is not the spots of its feature file"):
        rows_mosaic_spread([first, second], [3, 2])
    with pytest.raises(ValueError, match="2 spots files for 1 feature files"):
        rows_mosaic_spread([first, second], [3])
