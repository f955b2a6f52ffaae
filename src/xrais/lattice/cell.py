"""Unit cells from their parameters: volume, real-space vectors, and the primitive cell of a
centred one (what indexing with a known cell searches for).

A crystallographer gives a cell as (a, b, c in Å, α, β, γ in degrees) in the conventional setting
of its space group (DIALS ``known_symmetry.unit_cell`` and ``known_symmetry.space_group``). A
centred lattice (A, B, C, I, F, or R in hexagonal axes) has further lattice points inside that
cell; a still's spots index on its primitive cell, whose volume is the conventional one divided by
the points per cell (2, 4 or 3), so that is the cell the orientation search fits
(:func:`known_cell_vectors`).
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np

#: Primitive basis vectors (rows, in units of the conventional a, b, c) of each lattice type, as
#: International Tables (R: the obverse rhombohedral cell in hexagonal axes).
CENTRING_BASES = {
    "P": ((1, 0, 0), (0, 1, 0), (0, 0, 1)),
    "A": ((1, 0, 0), (0, 0.5, 0.5), (0, -0.5, 0.5)),
    "B": ((0.5, 0, 0.5), (0, 1, 0), (-0.5, 0, 0.5)),
    "C": ((0.5, 0.5, 0), (-0.5, 0.5, 0), (0, 0, 1)),
    "I": ((-0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.5, 0.5, -0.5)),
    "F": ((0, 0.5, 0.5), (0.5, 0, 0.5), (0.5, 0.5, 0)),
    "R": ((2 / 3, 1 / 3, 1 / 3), (-1 / 3, 1 / 3, 1 / 3), (-1 / 3, -2 / 3, 1 / 3)),
}


def cell_volume(cell) -> float:
    """Volume (Å³) of a cell (a, b, c, α, β, γ; Å, degrees)."""
    cosines = [math.cos(math.radians(float(angle))) for angle in cell[3:]]
    factor = 1.0 - sum(c * c for c in cosines) + 2.0 * cosines[0] * cosines[1] * cosines[2]
    return float(cell[0]) * float(cell[1]) * float(cell[2]) * math.sqrt(max(0.0, factor))


def default_orientation(cell) -> np.ndarray:
    """Real-space vectors (rows a, b, c; Å) of a cell (a, b, c, α, β, γ; Å, degrees) in
    nanoBragg's default orientation: a* along x, b* in the x–y plane."""
    a, b, c = (float(v) for v in cell[:3])
    alpha, beta, gamma = np.radians(np.asarray(cell[3:], dtype=float))
    volume = cell_volume(cell)
    if volume <= 0.0:
        raise ValueError(f"impossible unit cell {tuple(cell)}")
    a_star, b_star, c_star = (b * c * math.sin(alpha) / volume, c * a * math.sin(beta) / volume,
                              a * b * math.sin(gamma) / volume)
    cos_alpha_star = (math.cos(beta) * math.cos(gamma) - math.cos(alpha)) / (math.sin(beta) * math.sin(gamma))
    cos_beta_star = (math.cos(gamma) * math.cos(alpha) - math.cos(beta)) / (math.sin(gamma) * math.sin(alpha))
    cos_gamma_star = (math.cos(alpha) * math.cos(beta) - math.cos(gamma)) / (math.sin(alpha) * math.sin(beta))
    sin_gamma_star = math.sqrt(1.0 - cos_gamma_star ** 2)
    reciprocal = np.array([
        [a_star, 0.0, 0.0],
        [b_star * cos_gamma_star, b_star * sin_gamma_star, 0.0],
        [c_star * cos_beta_star, c_star * (cos_alpha_star - cos_beta_star * cos_gamma_star) / sin_gamma_star, 0.0],
    ])
    reciprocal[2, 2] = math.sqrt(max(0.0, c_star ** 2 - reciprocal[2, 0] ** 2 - reciprocal[2, 1] ** 2))
    return np.linalg.inv(reciprocal).T


#: Characters a Hermann–Mauguin symbol may hold after its lattice letter: axes, screw and glide
#: parts, mirrors, bars, and a setting (":H", ":R", "(1)").
SYMBOL_CHARACTERS = set("0123456789 -/:_(),mnabcdeHRhr")


def lattice_centring(space_group: Optional[str]) -> str:
    """The lattice letter (P, A, B, C, I, F or R) of a Hermann–Mauguin space-group symbol ("P 61 2 2",
    "C2", "I222", "Fm-3m", "H3" and "R3:H" for R in hexagonal axes; None: P). ValueError otherwise:
    space-group numbers and other words are not read (give the symbol)."""
    if space_group is None:
        return "P"
    symbol = str(space_group).strip()
    letter = symbol[:1].upper()
    if letter == "H":
        letter = "R"
    if letter not in CENTRING_BASES or not set(symbol[1:]) <= SYMBOL_CHARACTERS:
        raise ValueError(f"space group {space_group!r}: give a Hermann-Mauguin symbol that begins with its lattice "
                         "letter (P, A, B, C, I, F, R or H), as P6122 or 'C 1 2 1'")
    return letter


def axial_family(space_group: Optional[str]) -> Optional[str]:
    """"hexagonal" (a 6- or 3-fold axis first: P6122, P3121, P-3; hexagonal axes) or "tetragonal" (a
    4-fold first and no 3-fold: P41212, I4, P-42c) for a symbol whose first axis says so plainly;
    None for the others (triclinic to orthorhombic need no equal edges, and a short cubic symbol
    such as P432 cannot be told from a tetragonal one without the tables)."""
    if space_group is None:
        return None
    axes = "".join(ch for ch in str(space_group).strip()[1:].split(":")[0] if ch not in " _()")
    axes = axes[1:] if axes.startswith("-") else axes
    if axes[:1] in ("6", "3"):
        return "hexagonal"
    if axes[:1] == "4" and "3" not in axes:
        return "tetragonal"
    return None


#: How far a cell may be from its family's equal edges and right angles: relative, and degrees.
FAMILY_EDGE_TOLERANCE, FAMILY_ANGLE_TOLERANCE = 0.01, 1.0


def parse_cell(cell) -> Tuple[float, ...]:
    """Six numbers from a cell given as a sequence or as text ("93,93,130.5,90,90,120", commas or
    spaces). ValueError naming the cell otherwise."""
    parts = str(cell).replace(",", " ").split() if isinstance(cell, str) else list(cell)
    try:
        values = tuple(float(v) for v in parts)
    except (TypeError, ValueError):
        raise ValueError(f"unit cell {cell!r}: give six numbers, a,b,c (Å),alpha,beta,gamma (degrees)") from None
    if len(values) != 6:
        raise ValueError(f"unit cell {cell!r}: give six numbers, a,b,c (Å),alpha,beta,gamma (degrees)")
    return values


def check_known_symmetry(cell, space_group: Optional[str]) -> None:
    """ValueError, naming the problem, unless ``cell`` (or None) and ``space_group`` (or None)
    describe a crystal :func:`known_cell_vectors` can use: a space group needs its cell."""
    if cell is None:
        if space_group is not None:
            raise ValueError(f"a space group ({space_group}) without its unit cell: give the cell too")
        return
    known_cell_vectors(cell, space_group)


def known_cell_vectors(cell, space_group: Optional[str] = None) -> np.ndarray:
    """Real-space vectors (rows, Å) of the primitive cell of a crystal given by its conventional
    cell (a, b, c Å, α, β, γ °; a sequence or text: :func:`parse_cell`) and space group (its
    lattice letter: :data:`CENTRING_BASES`), in :func:`default_orientation`. An R group's cell is
    read in hexagonal axes (a = b, α = β = 90°, γ = 120°: the centring applies) or in rhombohedral
    axes (a = b = c, α = β = γ: primitive already); any other cell with R is refused, as is a cell
    that does not fit a hexagonal or tetragonal group (:func:`axial_family`). ValueError,
    naming the problem, for a cell that is none: six numbers, edges > 0, angles strictly between 0
    and 180° that close a cell (a volume of at least 10⁻³ a·b·c)."""
    values = parse_cell(cell)
    if min(values[:3]) <= 0.0 or not all(0.0 < angle < 180.0 for angle in values[3:]) or \
            cell_volume(values) <= 1e-3 * values[0] * values[1] * values[2]:
        raise ValueError(f"unit cell {values}: edges must be positive and the angles (0-180 degrees) "
                         "must close a cell")
    letter = lattice_centring(space_group)
    family = axial_family(space_group)
    if family is not None and letter != "R":  # R: its two settings, below
        a, b, _, alpha, beta, gamma = values
        wanted = 120.0 if family == "hexagonal" else 90.0
        if not (math.isclose(a, b, rel_tol=FAMILY_EDGE_TOLERANCE) and abs(alpha - 90.0) <= FAMILY_ANGLE_TOLERANCE
                and abs(beta - 90.0) <= FAMILY_ANGLE_TOLERANCE and abs(gamma - wanted) <= FAMILY_ANGLE_TOLERANCE):
            raise ValueError(f"unit cell {values} does not fit space group {space_group} ({family}: a = b, "
                             f"alpha = beta = 90, gamma = {wanted:g})")
    basis = np.array(CENTRING_BASES[letter], float)
    if letter == "R":
        a, b, c, alpha, beta, gamma = values
        hexagonal = math.isclose(a, b, rel_tol=1e-3) and all(abs(angle - 90.0) < 0.1 for angle in (alpha, beta)) \
            and abs(gamma - 120.0) < 0.1
        rhombohedral = math.isclose(a, b, rel_tol=1e-3) and math.isclose(a, c, rel_tol=1e-3) and \
            abs(alpha - beta) < 0.1 and abs(alpha - gamma) < 0.1
        if not (hexagonal or rhombohedral):
            raise ValueError(f"unit cell {values} with space group {space_group}: an R cell is given in hexagonal "
                             "axes (a = b, alpha = beta = 90, gamma = 120) or rhombohedral axes (a = b = c, "
                             "alpha = beta = gamma)")
        if rhombohedral and not hexagonal:
            basis = np.eye(3)
    return basis @ default_orientation(values)
