"""Reflections of known lattices on a still, without rendering: the test data of xrais.lattice."""
import numpy as np


def ewald_cap_spots(cell, rotation, d_min=2.0, wavelength=1.0, excitation=0.0015, on_sphere=False):
    """Scattering vectors (Å⁻¹) of the reciprocal-lattice nodes of ``cell`` (rows, Å) turned by
    ``rotation`` that lie within ``excitation`` of the Ewald sphere, out to d_min, on one quadrant
    of a detector (r·fast > 0, r·slow > 0 in the lab frame of :func:`scattering_vectors`): a
    still's reflections, as the spot finder maps them, without rendering. on_sphere: each spot
    where a still records it, on the sphere along the ray from its centre through the node (the
    excitation error's offset, along the sphere's normal), instead of at the node."""
    from xrais.spotfinder import LAB_BEAM, LAB_FAST, LAB_SLOW

    reciprocal = np.linalg.inv(np.asarray(cell, float) @ rotation.T).T
    reach = int(np.ceil(np.linalg.norm(cell, axis=1).max() / d_min))
    h = np.stack(np.meshgrid(*[np.arange(-reach, reach + 1)] * 3, indexing="ij"), -1).reshape(-1, 3)
    r = h @ reciprocal
    near_sphere = np.abs(np.linalg.norm(r + LAB_BEAM / wavelength, axis=1) - 1.0 / wavelength) < excitation
    keep = near_sphere & (np.linalg.norm(r, axis=1) < 1.0 / d_min) & (r @ LAB_FAST > 0) & (r @ LAB_SLOW > 0)
    r = r[keep]
    if on_sphere:
        s1 = r + LAB_BEAM / wavelength
        r = s1 / (wavelength * np.linalg.norm(s1, axis=1, keepdims=True)) - LAB_BEAM / wavelength
    return r
