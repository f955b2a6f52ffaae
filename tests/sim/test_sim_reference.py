"""The simulator against nanoBragg: the three shared reference images, pixel by pixel."""
import numpy as np
import pytest

from xrais.io import Geometry
from xrais.sim import Beam, DetectorFrame, render_bragg
from simhelpers import REFERENCE, load_reference_case, reference_frame, reference_lattice

CASES = ("case01", "case02", "case03")
pytestmark = pytest.mark.skipif(not REFERENCE.is_dir(), reason=f"reference cases not found at {REFERENCE}")


@pytest.mark.parametrize("path", ["exact", "fast", "reflections"])
@pytest.mark.parametrize("case", CASES)
def test_matches_nanobragg(case, path):
    params, structure, reference = load_reference_case(case)
    beam = Beam(params["wavelength_A"], params["fluence_photons_per_m2"])
    image = render_bragg(reference_lattice(params), structure, beam, reference_frame(params), path=path, device="cpu")
    assert image.shape == reference.shape
    pearson = np.corrcoef(image.ravel(), reference.ravel())[0, 1]
    assert pearson >= 0.999
    assert image.sum() == pytest.approx(reference.sum(), rel=0.01)
    # in fact the same to float32 rounding
    np.testing.assert_allclose(image, reference, rtol=1e-4, atol=1e-6 * reference.max())


@pytest.mark.parametrize("case", CASES)
def test_geometry_adapter_reproduces_nanobragg_detector(case):
    """An xrais Geometry with the case's beam centre gives nanoBragg's pix0 and axes."""
    params, _, _ = load_reference_case(case)
    geometry = Geometry(params["distance_mm"], params["wavelength_A"], params["pixel_size_mm"],
                        params["beam_center_px_fast_slow_edge_origin"], params["image_shape_slow_fast"])
    frame = DetectorFrame.from_geometry(geometry)
    np.testing.assert_allclose(frame.pix0, np.array(params["pix0_vector_m"]) * 1e3, atol=1e-9)
    np.testing.assert_allclose(frame.fdet, params["fdet_vector"])
    np.testing.assert_allclose(frame.sdet, params["sdet_vector"])
    np.testing.assert_allclose(frame.normal, params["odet_vector"])
    assert frame.beam_hit() == pytest.approx(tuple(params["beam_center_px_fast_slow_edge_origin"]), abs=1e-9)
