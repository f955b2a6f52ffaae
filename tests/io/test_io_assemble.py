"""Multi-panel assembly onto one flat lab-frame image (xrais.io.assemble)."""
import math

import numpy as np
import pytest

from xrais.io import GeometryOverride, ImageError
from xrais.io.assemble import PanelGeometry, make_layout, to_frame

BEAM = (0.0, 0.0, -1.0)  # dxtbx lab frame: the beam travels along −z
PIXEL = 0.1


def _rotation(axis, degrees):
    x, y, z = np.asarray(axis, float) / np.linalg.norm(axis)
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    t = 1 - c
    return np.array([[t * x * x + c, t * x * y - s * z, t * x * z + s * y],
                     [t * x * y + s * z, t * y * y + c, t * y * z - s * x],
                     [t * x * z - s * y, t * y * z + s * x, t * z * z + c]])


def _panel(origin, fast=(1, 0, 0), slow=(0, -1, 0), shape=(50, 80), name="p", pixel=(PIXEL, PIXEL)):
    return PanelGeometry(tuple(map(float, origin)), tuple(map(float, fast)), tuple(map(float, slow)), pixel, shape, name)


def _true_two_theta(panel: PanelGeometry, slow, fast):
    """Scattering angle (rad) of the centre of panel pixel (slow, fast)."""
    position = (np.asarray(panel.origin) + (fast + 0.5) * panel.pixel_size[0] * np.asarray(panel.fast_axis)
                + (slow + 0.5) * panel.pixel_size[1] * np.asarray(panel.slow_axis))
    return np.arccos(-position[..., 2] / np.linalg.norm(position, axis=-1))


def _image_two_theta(layout, j, i):
    radius = np.hypot(i + 0.5 - layout.beam_centre[0], j + 0.5 - layout.beam_centre[1]) * layout.pixel_size
    return np.arctan(radius / layout.distance)


def _check_angles(layout, panels, samples=4000):
    """Every image pixel shows the panel pixel whose scattering angle it has (to a pixel)."""
    offsets = np.cumsum([0] + [p.shape[0] * p.shape[1] for p in panels])
    rng = np.random.default_rng(0)
    covered = np.argwhere(layout.source >= 0)
    for j, i in covered[rng.choice(len(covered), size=min(samples, len(covered)), replace=False)]:
        flat = layout.source[j, i]
        k = int(np.searchsorted(offsets, flat, side="right") - 1)
        slow, fast = divmod(int(flat - offsets[k]), panels[k].shape[1])
        tolerance = 0.75 * layout.pixel_size / layout.distance
        assert abs(_true_two_theta(panels[k], slow, fast) - _image_two_theta(layout, j, i)) < tolerance


def test_two_coplanar_panels_are_placed_exactly_with_the_gap_masked():
    rng = np.random.default_rng(1)
    top, bottom = rng.integers(0, 100, (2, 50, 80)).astype(np.int32)
    panels = [_panel((-4.0, 5.0, -100.0), name="top"), _panel((-4.0, -0.2, -100.0), name="bottom")]
    layout = make_layout("test", panels, BEAM)
    pixels, mask = layout.assemble("test", [top, bottom], [None, bottom > 90])
    assert layout.shape == (102, 80) and layout.distance == pytest.approx(100.0)
    assert layout.beam_centre == pytest.approx((40.0, 50.0))
    np.testing.assert_array_equal(pixels[:50], top)
    np.testing.assert_array_equal(pixels[52:], bottom)
    assert mask[50:52].all() and not mask[:50].any()
    np.testing.assert_array_equal(mask[52:], bottom > 90)
    assert (pixels[50:52] == 0).all()


def test_overlapping_panels_first_panel_wins():
    panels = [_panel((-4.0, 5.0, -100.0)), _panel((-4.0, 4.0, -100.0))]
    layout = make_layout("test", panels, BEAM)
    pixels, _ = layout.assemble("test", [np.full((50, 80), 1), np.full((50, 80), 2)], [None, None])
    assert (pixels[:50] == 1).all() and (pixels[50:] == 2).all()


def test_panels_rotated_by_90_degrees_keep_every_pixel_in_place():
    panels = [_panel((-4.0, 5.0, -100.0), name="upright"),
              _panel((7.5, 5.0, -100.0), fast=(0, -1, 0), slow=(-1, 0, 0), shape=(30, 60), name="turned")]
    layout = make_layout("test", panels, BEAM)
    data = [np.arange(50 * 80).reshape(50, 80), 10_000 + np.arange(30 * 60).reshape(30, 60)]
    pixels, mask = layout.assemble("test", data, [None, None])
    assert layout.shape == (60, 115)
    assert mask.sum() == 60 * 115 - (50 * 80 + 30 * 60)
    # pixel (s, f) of the turned panel: x = 7.5 − (s + ½)·p, y = 5 − (f + ½)·p
    for s, f in [(0, 0), (29, 59), (12, 7)]:
        x, y = 7.5 - (s + 0.5) * PIXEL, 5.0 - (f + 0.5) * PIXEL
        i = int((x + 4.0) / PIXEL)
        j = int((5.0 - y) / PIXEL)
        assert pixels[j, i] == data[1][s, f]
    _check_angles(layout, panels)


def test_tilted_and_offset_panels_keep_their_scattering_angles():
    tilt = _rotation((1, 1, 0), 3.0)
    panels = [_panel(tilt @ np.array([-6.0, 6.0, -100.0]), fast=tilt @ [1, 0, 0], slow=tilt @ [0, -1, 0],
                     shape=(60, 60), name="tilted"),
              _panel((0.5, 6.0, -101.0), fast=_rotation((0, 0, 1), 1.0) @ [1, 0, 0],
                     slow=_rotation((0, 0, 1), 1.0) @ [0, -1, 0], shape=(60, 55), name="farther")]
    layout = make_layout("test", panels, BEAM)
    assert layout.source is not None
    _check_angles(layout, panels)


def test_single_perpendicular_panel_is_used_as_it_is():
    panel = _panel((-3.0, 2.5, -120.0), shape=(50, 80))
    layout = make_layout("test", [panel], BEAM)
    data = np.ones((50, 80), np.int32)
    pixels, mask = layout.assemble("test", [data], [None])
    assert layout.source is None and pixels is data and not mask.any()
    assert layout.distance == pytest.approx(120.0)
    assert layout.beam_centre == pytest.approx((30.0, 25.0))


@pytest.mark.parametrize("axis, degrees", [((0, 1, 0), 1.0), ((1, 0, 0), 30.0), ((1, 1, 0), -50.0)])
def test_single_tilted_panel_is_used_as_it_is_with_its_orientation(axis, degrees):
    """A single panel at any tilt (a detector on a 2θ arm) keeps its pixels and its orientation: the
    geometry's 1/d at every pixel is the panel's true scattering angle's."""
    tilt = _rotation(axis, degrees)
    panel = _panel(tilt @ np.array([-3.0, 2.5, -120.0]), fast=tilt @ [1, 0, 0], slow=tilt @ [0, -1, 0])
    layout = make_layout("test", [panel], BEAM)
    data = np.arange(50 * 80).reshape(50, 80)
    pixels, _ = layout.assemble("test", [data], [None])
    assert layout.source is None and pixels is data
    frame = to_frame("test", layout, [data], [None], 1.0, GeometryOverride())
    assert frame.geometry.tilt_deg == pytest.approx(abs(degrees), abs=1e-6)
    slow, fast = np.meshgrid(np.arange(50), np.arange(80), indexing="ij")
    inverse_d = frame.geometry.inverse_d_at_pixel(fast + 0.5, slow + 0.5)
    expected = 2.0 * np.sin(0.5 * _true_two_theta(panel, slow[..., None], fast[..., None])) / 1.0
    np.testing.assert_allclose(inverse_d, expected, rtol=1e-9)


def test_single_panel_seen_from_behind_is_refused():
    panel = _panel((-3.0, 2.5, -120.0), fast=_rotation((1, 0, 0), 80) @ [1, 0, 0],
                   slow=_rotation((1, 0, 0), 80) @ [0, -1, 0])
    layout = make_layout("test", [panel], BEAM)
    with pytest.raises(ImageError, match="tilted 80.0° against the beam"):
        to_frame("test", layout, [np.zeros((50, 80))], [None], 1.0, GeometryOverride())


@pytest.mark.parametrize("panels, problem", [
    ([_panel((-4, 5, -100), fast=_rotation((0, 0, 1), 10) @ [1, 0, 0])], "fast and slow axes are not perpendicular"),
    ([_panel(_rotation((0, 1, 0), 20) @ [-4, 5, -100], fast=_rotation((0, 1, 0), 20) @ [1, 0, 0]),
      _panel((4, 5, -100))], "tilted 20.0° from the other panels' plane"),
    ([_panel((-4, 5, -100)), _panel((-4, -1, -130))], "panel distances along the beam"),
    ([_panel((-4, 5, 100))], "not downstream of the sample"),
    ([_panel((-4, 5, -100), fast=(0, 0, 0))], "zero vector"),
    ([_panel((-4, 5, -100), pixel=(0.0, 0.1))], "pixel size"),
])
def test_unrepresentable_panel_sets_are_rejected(panels, problem):
    with pytest.raises(ImageError, match=problem):
        make_layout("detector.h5", panels, BEAM)


def test_absurd_extent_is_rejected_before_allocating():
    panels = [_panel((-4, 5, -100), pixel=(PIXEL, PIXEL)), _panel((-4, 5, -100), shape=(10, 10), pixel=(1e-3, 1e-3))]
    panels.append(_panel((40, 40, -100), shape=(10, 10)))
    with pytest.raises(ImageError, match="implausibly large"):
        make_layout("test", panels, BEAM)


def test_to_frame_applies_the_user_override():
    layout = make_layout("test", [_panel((-4.0, 5.0, -100.0)), _panel((-4.0, -0.2, -100.0))], BEAM)
    data = [np.zeros((50, 80), np.int32)] * 2
    frame = to_frame("det.cbf", layout, data, [None, None], 1.0, GeometryOverride(distance=150.0), "CS-PAD")
    assert frame.geometry.distance == 150.0 and frame.geometry.beam_centre == pytest.approx((40.0, 50.0))
    assert frame.geometry.detector == "CS-PAD" and frame.metadata["panels"] == 2
    with pytest.raises(ImageError, match="wavelength"):
        to_frame("det.cbf", layout, data, [None, None], None, GeometryOverride(), "CS-PAD")
    with pytest.raises(ImageError, match="panel data of shape"):
        layout.assemble("det.cbf", [np.zeros((5, 5))] * 2, [None, None])


@pytest.mark.parametrize("panel, problem", [
    (_panel((np.nan, 5, -100)), "origin \\[nan, 5.0, -100.0\\] mm makes no sense"),
    (_panel((1e300, 5, -100)), "origin .* mm makes no sense"),
    (_panel((-4, 5, -100), fast=(1e300, 1e300, 0)), "fast axis is not a finite 3-vector"),
    (_panel((-4, 5, -100), slow=(0, np.inf, 0)), "slow axis is not a finite 3-vector"),
])
def test_corrupt_numbers_never_reach_the_mapping(panel, problem):
    with pytest.raises(ImageError, match=problem):
        make_layout("test", [panel, _panel((-4.0, -0.2, -100.0))], BEAM)


def test_panels_of_a_swung_detector_are_assembled_on_its_plane():
    """Two coplanar panels (with a gap) on a 30° 2θ arm: assembled on their own plane, not refused
    and not projected onto one normal to the beam; the geometry is tilted 30° and its 1/d at every
    covered pixel is that of the panel pixel shown (to a pixel); one panel off the others' plane by
    more than 5° is refused."""
    arm = _rotation((1, 0, 0), 30.0)
    panels = [_panel(arm @ np.array([-4.0, 5.0, -100.0]), fast=arm @ [1, 0, 0], slow=arm @ [0, -1, 0], name="top"),
              _panel(arm @ np.array([-4.0, -0.2, -100.0]), fast=arm @ [1, 0, 0], slow=arm @ [0, -1, 0],
                     name="bottom")]
    layout = make_layout("test", panels, BEAM)
    assert layout.source is not None and layout.shape == (102, 80)
    data = [np.arange(50 * 80).reshape(50, 80), 10_000 + np.arange(50 * 80).reshape(50, 80)]
    frame = to_frame("test", layout, data, [None, None], 1.0, GeometryOverride())
    geometry = frame.geometry
    assert geometry.tilt_deg == pytest.approx(30.0) and geometry.distance == pytest.approx(100.0)
    offsets = np.cumsum([0, 50 * 80])
    rng = np.random.default_rng(0)
    covered = np.argwhere(layout.source >= 0)
    for j, i in covered[rng.choice(len(covered), 500, replace=False)]:
        flat = layout.source[j, i]
        k = int(flat >= offsets[1])
        slow, fast = divmod(int(flat - offsets[k]), 80)
        true = 2.0 * np.sin(0.5 * _true_two_theta(panels[k], slow, fast))
        assert abs(geometry.inverse_d_at_pixel(i + 0.5, j + 0.5) - true) < 1.5 * PIXEL / 100.0
        assert frame.pixels[j, i] == data[k][slow, fast]
    askew = _rotation((1, 0, 0), 42.0)
    panels[1] = _panel(askew @ np.array([-4.0, -0.2, -100.0]), fast=askew @ [1, 0, 0], slow=askew @ [0, -1, 0],
                       name="bottom")
    with pytest.raises(ImageError, match="panel bottom is tilted 12.0° from the other panels' plane"):
        make_layout("test", panels, BEAM)
