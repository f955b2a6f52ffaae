"""Geometry, resolution helpers and the detector catalogue."""
import math

import numpy as np
import pytest

from xrais.io import Geometry, GeometryError, GeometryOverride, detectors


def test_resolution_at_a_radius_follows_bragg():
    g = Geometry(distance=200.0, wavelength=1.0, pixel_size=0.1, beam_centre=(500, 500), shape=(1000, 1000))
    radius = 1000.0  # pixels = 100 mm → 2θ = atan(0.5)
    two_theta = math.atan(100.0 / 200.0)
    assert g.d_at(radius) == pytest.approx(1.0 / (2 * math.sin(two_theta / 2)))
    assert g.inverse_d_at(0.0) == 0.0 and math.isinf(g.d_at(0.0))
    radii = np.array([10.0, 300.0, 1500.0])
    np.testing.assert_allclose(g.radius_at(g.d_at(radii)), radii)
    assert math.isnan(g.radius_at(0.4))  # d < λ/2 is unreachable


def test_geometry_rejects_nonsense():
    base = dict(distance=200, wavelength=1.0, pixel_size=0.1, beam_centre=(1, 1), shape=(10, 10))
    for field, value in [("distance", 0), ("wavelength", 0), ("wavelength", -1), ("pixel_size", 0),
                         ("distance", float("nan")), ("shape", (0, 10)), ("beam_centre", (float("inf"), 0))]:
        with pytest.raises(GeometryError):
            Geometry(**{**base, field: value})


def test_override_replaces_only_given_values():
    g = Geometry(distance=200, wavelength=1.0, pixel_size=0.1, beam_centre=(1, 2), shape=(10, 10))
    o = GeometryOverride(distance=250.0, beam_centre=(3.0, 4.0))
    g2 = o.apply(g)
    assert (g2.distance, g2.wavelength, g2.beam_centre) == (250.0, 1.0, (3.0, 4.0))
    assert not GeometryOverride() and o


@pytest.mark.parametrize("name, shape, pixel, factor", [
    ("PILATUS 6M", (2527, 2463), 0.172, 2),
    ("EIGER 16M", (4371, 4150), 0.075, 4),
    ("EIGER2 XE 16M", (4362, 4148), 0.075, 4),
    ("JUNGFRAU 16M", (4434, 4218), 0.075, 4),
    ("Rayonix MX340-HS", (3840, 3840), 0.08854, 4),
])
def test_catalogue_factors_of_the_method(name, shape, pixel, factor):
    model = detectors.get(name)
    assert model.shape == shape and model.pixel_size == pytest.approx(pixel) and model.downsample == factor
    g = Geometry(distance=200, wavelength=1, pixel_size=pixel, beam_centre=(1, 1), shape=shape, detector=name)
    assert g.downsample == factor


@pytest.mark.parametrize("header_name, shape, expected", [
    ("PILATUS3 6M", (2527, 2463), "PILATUS 6M"),
    ("PILATUS 6M-F", (2527, 2463), "PILATUS 6M"),
    ("EIGER 16M XR4i", (4362, 4148), "EIGER2 XE 16M"),  # a converted EIGER2 with an old-style name
    ("Eiger2 XE 16M", (4362, 4148), "EIGER2 XE 16M"),
    ("PILATUS 12M", (5071, 2463), "PILATUS 12M"),
    ("unknown", (3840, 3840), "Rayonix MX340-HS"),
    # the small detectors (issue 34, item 3), the wide 300K apart from the tall one
    ("PILATUS 300K, S/N 3-0106", (619, 487), "PILATUS 300K"),
    ("PILATUS3 R 300K-W", (195, 1475), "PILATUS 300K-W"),
    ("PILATUS3 S 1M", (1043, 981), "PILATUS 1M"),
    ("PILATUS 100K", (195, 487), "PILATUS 100K"),
    ("Dectris Eiger 1M", (1065, 1030), "EIGER 1M"),
    ("unknown", (619, 487), "PILATUS 300K"),
    ("Dectris EIGER2 X 4M", (2162, 2068), "EIGER2 XE 4M"),
    ("EIGER2 R 1M", (1062, 1028), "EIGER2 XE 1M"),
    ("JUNGFRAU 4M", (2164, 2068), "JUNGFRAU 4M"),
    ("unknown", (1064, 1030), "JUNGFRAU 1M"),  # one pixel row short of the EIGER 1M
    ("Rayonix MX170-HS", (1920, 1920), "Rayonix MX170-HS"),
])
def test_catalogue_lookup_from_headers(header_name, shape, expected):
    assert detectors.find(header_name, shape).name == expected


def test_generic_fallback_factor_from_pixel_count():
    assert detectors.generic_downsample((2527, 2463)) == 2
    assert detectors.generic_downsample((4371, 4150)) == 4
    assert detectors.generic_downsample((512, 512)) == 1
    g = Geometry(distance=100, wavelength=1, pixel_size=0.05, beam_centre=(1, 1), shape=(6144, 6000), detector="homemade")
    assert g.downsample == 6


@pytest.mark.parametrize("model", [m for m in detectors.catalogue() if m.module_shape])
def test_gap_masks_tile_the_detector(model):
    mask = model.gap_mask()
    ns, nf = model.module_shape
    gs, gf = model.module_gap
    rows = (model.shape[0] + gs) // (ns + gs)
    cols = (model.shape[1] + gf) // (nf + gf)
    assert (~mask).sum() == rows * cols * ns * nf
    assert not mask[0, 0] and not mask[-1, -1]
