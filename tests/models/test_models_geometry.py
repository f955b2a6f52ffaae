"""Resolution head geometry: radius (downsampled px) ↔ 1/d, d and B helpers, blank images."""
import math

import numpy as np
import pytest
import torch
from torch import nn

from xrais.io import Geometry
from xrais.models import (Architecture, XraisNet, b_factor_from_inverse_d, inverse_d_from_b_factor,
                          inverse_d_from_radius, radius_from_inverse_d, resolution_from_inverse_d)

# (wavelength Å, distance mm, pixel size mm, downsample N, radius in downsampled px, 1/d Å⁻¹)
KNOWN = [
    (0.9795, 250.0, 0.172, 2, 392.0, 0.49988208791749095),  # PILATUS 6M: d ≈ 2.0 Å
    (1.0, 200.0, 0.075, 4, 300.0, 0.4197106022603994),      # EIGER 16M
]


def _tensor(*values):
    return [torch.tensor(float(v), dtype=torch.float64) for v in values]


@pytest.mark.parametrize("wavelength, distance, pixel_size, downsample, radius, inverse_d", KNOWN)
def test_known_radius_gives_known_inverse_d(wavelength, distance, pixel_size, downsample, radius, inverse_d):
    value = inverse_d_from_radius(*_tensor(radius, wavelength, distance, pixel_size, downsample))
    assert float(value) == pytest.approx(inverse_d, rel=1e-12)
    # Same as the detector geometry at the raw-pixel radius N·r (independent implementation).
    geometry = Geometry(distance=distance, wavelength=wavelength, pixel_size=pixel_size, beam_centre=(0, 0),
                        shape=(100, 100), downsample=downsample)
    assert float(geometry.inverse_d_at(downsample * radius)) == pytest.approx(inverse_d, rel=1e-12)
    assert radius_from_inverse_d(inverse_d, wavelength, distance, pixel_size, downsample) == pytest.approx(radius, rel=1e-9)


def test_conversion_is_odd_and_zero_at_the_beam():
    radii = torch.tensor([-300.0, -1.0, 0.0, 1.0, 300.0], dtype=torch.float64)
    values = inverse_d_from_radius(radii, *_tensor(0.9795, 250.0, 0.172, 2))
    torch.testing.assert_close(values, -values.flip(0))
    assert values[2] == 0 and bool((values[3:] > 0).all())


def test_unreachable_resolution_has_no_radius():
    assert math.isnan(radius_from_inverse_d(2.5, 1.0, 200.0, 0.1, 2))  # sin θ > 1
    assert math.isnan(radius_from_inverse_d(1.5, 1.0, 200.0, 0.1, 2))  # 2θ = 97°: off any flat detector
    assert np.isfinite(radius_from_inverse_d(1.3, 1.0, 200.0, 0.1, 2))  # 2θ = 81°


def test_d_and_b_factor_helpers():
    inverse_d = np.array([0.5, 0.25, 0.0, 1e-5])
    np.testing.assert_allclose(resolution_from_inverse_d(inverse_d), [2.0, 4.0, np.inf, np.inf])
    np.testing.assert_allclose(b_factor_from_inverse_d(inverse_d), [28.0, 76.0, np.inf, np.inf])  # B = 4·d² + 12
    np.testing.assert_allclose(inverse_d_from_b_factor([28.0, 76.0, np.inf]), [0.5, 0.25, 0.0])


def test_network_turns_its_scalar_into_inverse_d_with_each_quadrant_geometry():
    """With FC2 fixed to output s, the network predicts 1/d at radius 256·s for every geometry,
    signed while training and clamped at 0 (blank) in eval mode."""
    network = XraisNet(Architecture("resolution", width=0.125))
    rows = torch.tensor([[wl, d, p, n] for wl, d, p, n, _, _ in KNOWN], dtype=torch.float32)
    images = torch.zeros(len(KNOWN), 512, 512)
    for s in (392.0 / 256.0, 300.0 / 256.0, -0.5):
        with torch.no_grad():
            nn.init.zeros_(network.fc2.weight)
            nn.init.constant_(network.fc2.bias, s)
            network.train()
            signed = network(images, rows)
            network.eval()
            clamped = network(images, rows)
        expected = inverse_d_from_radius(torch.tensor(256.0 * s), *rows.unbind(1))
        torch.testing.assert_close(signed, expected)
        torch.testing.assert_close(clamped, expected.clamp_min(0))
    assert float(clamped.max()) == 0.0  # negative radius → blank (1/d = 0, d = inf)
    radii = np.array([392.0, 300.0])
    np.testing.assert_allclose(inverse_d_from_radius(torch.tensor(radii), *rows.double().unbind(1)).numpy(),
                               [k[5] for k in KNOWN], rtol=1e-6)
