"""Reflections of known lattices on a still, without rendering: the test data of xrais.lattice."""
import numpy as np


def ewald_cap_spots(cell, rotation, d_min=2.0, wavelength=1.0, excitation=0.0015):
    """Scattering vectors (Å⁻¹) of the reciprocal-lattice nodes of ``cell`` (rows, Å) turned by
    ``rotation`` that lie within ``excitation`` of the Ewald sphere, out to d_min, on one quadrant
    of a detector (r·fast > 0, r·slow > 0 in the lab frame of :func:`scattering_vectors`): a
    still's reflections, as the spot finder maps them, without rendering."""
    from xrais.spotfinder import LAB_BEAM, LAB_FAST, LAB_SLOW

    reciprocal = np.linalg.inv(np.asarray(cell, float) @ rotation.T).T
    reach = int(np.ceil(np.linalg.norm(cell, axis=1).max() / d_min))
    h = np.stack(np.meshgrid(*[np.arange(-reach, reach + 1)] * 3, indexing="ij"), -1).reshape(-1, 3)
    r = h @ reciprocal
    on_sphere = np.abs(np.linalg.norm(r + LAB_BEAM / wavelength, axis=1) - 1.0 / wavelength) < excitation
    keep = on_sphere & (np.linalg.norm(r, axis=1) < 1.0 / d_min) & (r @ LAB_FAST > 0) & (r @ LAB_SLOW > 0)
    return r[keep]
