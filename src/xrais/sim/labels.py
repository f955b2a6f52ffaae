"""Resolution ↔ B-factor label relation (the one place it is defined).

Holton (2009, J. Synchrotron Rad. 16, 133) fitted the average B factor of PDB entries against their
resolution with a quadratic, B = 4·d² + 12 (paper Figure 1). The fit used entries between 1 and
4.5 Å and becomes unreliable beyond about 5.5 Å: labels there are extrapolations.
"""
from __future__ import annotations

import numpy as np

#: Resolution range (Å) the PDB fit was made on, and the limit beyond which it is unreliable.
FIT_RANGE_A = (1.0, 4.5)
RELIABLE_UP_TO_A = 5.5


def b_factor_from_resolution(d):
    """Wilson B factor (Å²) of a crystal diffracting to resolution d (Å): B = 4·d² + 12."""
    d = np.asarray(d, dtype=float)
    b = 4.0 * d * d + 12.0
    return b if b.ndim else float(b)


def resolution_from_b_factor(b):
    """Resolution d (Å) for a Wilson B factor (Å²), the inverse of :func:`b_factor_from_resolution`.

    NaN for B < 12 Å² (no resolution maps to it).
    """
    b = np.asarray(b, dtype=float)
    with np.errstate(invalid="ignore"):
        d = np.sqrt((b - 12.0) / 4.0)
    return d if d.ndim else float(d)
