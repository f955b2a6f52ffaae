"""Conditioning (paper section 2.2, Figure 4): max-pool, square root, floor; quadrants with the
beam in the corner."""
import numpy as np
import pytest
import torch

from xrais import conditioning
from xrais.conditioning import condition, maxpool_sqrt, quadrant_region
from xrais.io import Geometry

# Paper Figure 4: an 8x8 region of a PILATUS 6M image around a Bragg reflection, and its 2x2
# max-pool → sqrt → floor result.
FIGURE4_RAW = np.array([
    [26, 35, 26, 28, 34, 30, 24, 24],
    [33, 29, 19, 29, 38, 35, 37, 28],
    [27, 18, 34, 30, 34, 37, 19, 37],
    [35, 34, 127, 194, 74, 30, 30, 27],
    [26, 29, 63, 318, 298, 66, 36, 27],
    [27, 28, 30, 70, 101, 38, 37, 29],
    [25, 36, 49, 36, 34, 50, 26, 30],
    [26, 22, 34, 26, 23, 37, 31, 27],
], dtype=np.int32)
FIGURE4_CONDITIONED = np.array([
    [5, 5, 6, 6],
    [5, 13, 8, 6],
    [5, 17, 17, 6],
    [6, 7, 7, 5],
], dtype=np.float32)


def test_figure4_block_operation_exactly():
    np.testing.assert_array_equal(maxpool_sqrt(FIGURE4_RAW, 2), FIGURE4_CONDITIONED)


def test_figure4_inside_a_quadrant():
    """The same block operation, through the quadrant machinery: the Figure 4 region placed at the
    beam corner of quadrant 3 appears unchanged at its top-left."""
    pixels = np.zeros((64, 64), dtype=np.int32)
    pixels[32:40, 32:40] = FIGURE4_RAW
    geometry = Geometry(distance=200, wavelength=1, pixel_size=0.172, beam_centre=(32.0, 32.0), shape=(64, 64), downsample=2)
    quads = condition(pixels, None, geometry)
    np.testing.assert_array_equal(quads[3, :4, :4], FIGURE4_CONDITIONED)
    assert quads[3, 4:, :].max() == 0 and quads[3, :, 4:].max() == 0


def _geometry(shape=(100, 120), beam=(50.2, 40.7), factor=2):
    return Geometry(distance=150, wavelength=1.0, pixel_size=0.1, beam_centre=beam, shape=shape, downsample=factor)


def test_quadrants_put_the_beam_in_the_corner():
    """A pixel just beside the beam, in each direction, lands at output (0, 0) of its own quadrant."""
    geometry = _geometry()
    split_s, split_f = conditioning.beam_split(geometry)
    assert (split_s, split_f) == (41, 50)  # nearest pixel boundaries to (slow 40.7, fast 50.2)
    values = {(-1, -1): 4, (-1, +1): 9, (+1, -1): 16, (+1, +1): 25}
    pixels = np.zeros(geometry.shape, dtype=np.int32)
    for (ds, df), v in values.items():
        pixels[split_s + (0 if ds > 0 else -1), split_f + (0 if df > 0 else -1)] = v
    quads = condition(pixels, None, geometry)
    for q, direction in enumerate(conditioning.QUADRANT_DIRECTIONS):
        assert quads[q, 0, 0] == np.sqrt(values[direction])
        assert quads[q].sum() == quads[q, 0, 0]


def test_quadrant_orientation_runs_away_from_the_beam():
    geometry = _geometry(beam=(60.0, 50.0))
    pixels = np.zeros(geometry.shape, dtype=np.int32)
    pixels[50 - 1 - 2 * 7, 60 - 1 - 2 * 3] = 100  # 7 blocks up, 3 blocks left of the beam
    pixels[50 + 2 * 5, 60 + 2 * 11] = 49  # 5 blocks down, 11 blocks right
    quads = condition(pixels, None, geometry)
    assert quads[0, 7, 3] == 10 and quads[0].sum() == 10
    assert quads[3, 5, 11] == 7 and quads[3].sum() == 7


def test_masked_and_negative_pixels_never_win():
    pixels = np.full((8, 8), 9, dtype=np.int32)
    pixels[0, 0] = 10000
    pixels[0, 2] = -1
    pixels[2:4, 2:4] = -5
    mask = np.zeros_like(pixels, dtype=bool)
    mask[0, 0] = True
    pooled = maxpool_sqrt(pixels, 2, mask)
    assert pooled[0, 0] == 3  # the masked 10000 lost to the valid 9s
    assert pooled[1, 1] == 0  # all-negative block → 0
    fully_masked = maxpool_sqrt(pixels, 2, np.ones_like(mask))
    assert fully_masked.max() == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_quadrant_kernel_reads_nan_and_negative_pixels_as_zero(dtype):
    """The quadrant kernel (``condition_whole`` pools from pixel (0, 0) with it) against the block
    definition on a float image with NaN, ±inf and negative pixels, masked and not: NaN and values
    < 0 count as 0, masked pixels never win, +inf wins (√inf = inf), with and without a mask."""
    from xrais.conditioning import condition_whole

    rng = np.random.default_rng(4)
    pixels = rng.normal(20.0, 30.0, (40, 36)).astype(dtype)
    pixels[rng.random(pixels.shape) < 0.05] = np.nan
    pixels[rng.random(pixels.shape) < 0.01] = -np.inf
    pixels[3, 5] = np.inf
    pixels[8:10, 8:10] = np.nan  # a block of NaN alone
    mask = rng.random(pixels.shape) < 0.1
    mask[3, 5] = False
    geometry = _geometry(shape=pixels.shape, beam=(18.0, 20.0))
    for given in (mask, None):
        valid = np.where((given if given is not None else False) | ~(pixels > 0), 0.0, pixels.astype(np.float64))
        expected = np.floor(np.sqrt(valid.reshape(20, 2, 18, 2).max(axis=(1, 3))))
        whole = condition_whole(pixels, given, geometry, factor=2)
        np.testing.assert_array_equal(whole, expected)
    assert np.isinf(expected[1, 2]) and expected[4, 4] == 0.0


def test_zero_padding_where_the_detector_ends():
    geometry = _geometry(shape=(30, 30), beam=(15.0, 15.0))
    pixels = np.ones(geometry.shape, dtype=np.int32) * 4
    quads = condition(pixels, None, geometry)
    # 15 raw pixels on each side = 7.5 blocks of 2: 8 non-zero rows/cols (last block half-filled).
    for q in range(4):
        assert np.all(quads[q, :8, :8] == 2)
        assert quads[q, 8:, :].max() == 0 and quads[q, :, 8:].max() == 0


def test_beam_outside_the_detector():
    """Offset detectors: the beam may lie beyond the image; quadrants then start with padding."""
    geometry = _geometry(shape=(40, 40), beam=(-10.0, 20.0))
    pixels = np.ones(geometry.shape, dtype=np.int32) * 16
    pixels[:, 0] = 25
    quads = condition(pixels, None, geometry)
    assert quads[0].max() == 0 and quads[2].max() == 0  # nothing at negative fast
    # +fast quadrants: 10 raw pixels (5 blocks) of padding before the detector begins.
    assert quads[1, :10, :5].max() == 0 and quads[1, 0, 5] == 5 and quads[1, 0, 6] == 4
    torch_quads = condition(torch.from_numpy(pixels), None, geometry)
    np.testing.assert_array_equal(torch_quads.numpy(), quads)


def test_single_quadrant_matches_the_full_set():
    rng = np.random.default_rng(1)
    geometry = _geometry(shape=(300, 280), beam=(130.3, 151.9), factor=3)
    pixels = rng.poisson(30, geometry.shape).astype(np.int32)
    full = condition(pixels, None, geometry)
    for q in range(4):
        np.testing.assert_array_equal(condition(pixels, None, geometry, quadrants=q)[0], full[q])
    np.testing.assert_array_equal(condition(pixels, None, geometry, quadrants=[3, 1]), full[[3, 1]])
    with pytest.raises(ValueError):
        condition(pixels, None, geometry, quadrants=[4])


@pytest.mark.parametrize("dtype", [np.int32, np.uint16, np.float32, np.float64, np.int64])
def test_numpy_and_torch_paths_agree(dtype):
    rng = np.random.default_rng(7)
    geometry = _geometry(shape=(1100, 1300), beam=(611.5, 540.2), factor=2)
    pixels = rng.poisson(50, geometry.shape).astype(dtype)
    pixels[rng.random(geometry.shape) < 1e-3] = 60000
    mask = rng.random(geometry.shape) < 0.01
    reference = condition(pixels, mask, geometry)
    as_tensor = condition(torch.from_numpy(pixels.astype(np.float32)), torch.from_numpy(mask), geometry)
    np.testing.assert_array_equal(as_tensor.numpy(), reference)
    batch = conditioning.condition_batch([pixels.astype(np.float32)] * 2, [mask] * 2, [geometry] * 2, quadrants=(0, 2))
    assert batch.shape == (2, 2, 512, 512)
    np.testing.assert_array_equal(batch[1].numpy(), reference[[0, 2]])


def test_brightest_value_is_sqrt_of_the_block_maximum():
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 100000, (64, 48)).astype(np.int32)
    pooled = maxpool_sqrt(pixels, 4)
    expected = np.floor(np.sqrt(pixels.reshape(16, 4, 12, 4).max(axis=(1, 3))))
    np.testing.assert_array_equal(pooled, expected)


def test_quadrant_region_matches_condition():
    geometry = _geometry(shape=(2527, 2463), beam=(1261.61, 1306.96))
    region = quadrant_region(geometry, 0)
    assert region.start == (1306, 1261) and region.step == (-1, -1) and region.factor == 2
    (rows, lead_s), (cols, lead_f) = region.spans(geometry.shape)
    assert (rows.start, rows.stop, lead_s) == (283, 1307, 0)
    assert (cols.start, cols.stop, lead_f) == (238, 1262, 0)


def test_a_swung_detector_has_no_quadrants_but_a_whole_frame():
    """A detector on a 2θ arm: ``condition`` refuses it in one line (its beam centre is no centre
    of rings); ``condition_whole`` pools it from pixel (0, 0), as a quadrant is pooled."""
    from xrais.conditioning import condition_whole
    from xrais.io.errors import UnsupportedGeometryError
    from xrais.io.geometry import two_theta_axes

    fast_axis, slow_axis = two_theta_axes(20.0)
    swung = Geometry.from_perpendicular_foot((100.0, 60.0), distance=150.0, wavelength=1.0, pixel_size=0.172,
                                             shape=(120, 200), downsample=2, fast_axis=fast_axis, slow_axis=slow_axis)
    pixels = np.arange(120 * 200, dtype=np.int32).reshape(120, 200) % 400
    with pytest.raises(UnsupportedGeometryError, match="tilted 20.0° to the beam .* no beam-centred quadrants"):
        condition(pixels, None, swung)
    whole = condition_whole(pixels, None, swung)
    expected = np.floor(np.sqrt(pixels.reshape(60, 2, 100, 2).max(axis=(1, 3))))
    np.testing.assert_array_equal(whole, expected)
