"""Structure factors from cctbx: atomic models (PDB/mmCIF) and random protein-like structures.

|F_calc| (B = 0, no bulk solvent; F000 left out, it would only light the direct-beam pixel) is
computed in the model's space group to ``d_min``, then expanded to P1 with Friedel mates into a
dense :class:`StructureFactors` table.

cctbx (the optional ``sim`` extra) must be loaded before numba's LLVM library: the two carry
different C++ runtimes and importing cctbx after numba crashes the interpreter. xrais always loads
numba, so unless cctbx was imported first these functions run cctbx in a child Python process
that imports cctbx before xrais (about a second of overhead per call; the structure pool caches
the results on disk).
"""
from __future__ import annotations

import math
import pickle
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Optional, Sequence, Tuple

import numpy as np

from .structure_factors import StructureFactors

#: Space groups of the paper's PDB models (Appendix A1.1).
PAPER_SPACE_GROUPS = (
    "P 3", "P 31 1 2", "R 3 :H", "P 6", "P 41 21 2", "P 32 2 1", "P 3 2 1", "P 4 21 2", "C 1 2 1", "P 41",
    "P 42 21 2", "P 31 2 1", "C 2 2 21", "R 3 2 :H", "P 41 3 2", "P 21 21 21", "P 61 2 2", "I 2 2 2", "P 43 21 2",
    "P 61", "P 1", "P 65 2 2", "I 21 21 21", "P 32", "P 21 21 2", "P 1 21 1", "F 4 3 2", "P 21 3", "I 2 3",
)
#: Unit-cell volume range (Å³) of the paper's PDB models.
PAPER_VOLUME_RANGE_A3 = (49_800.0, 48_400_000.0)
#: Largest dense |F|² table (bytes, float32) of a random cell: 160 MB keeps the cctbx build (FFT
#: grid) under ~1.8 GB of memory; at d_min = 1 Å it allows cells up to about 5·10⁶ Å³.
MAX_TABLE_BYTES = 160_000_000
#: Composition of protein without hydrogens (atom fractions of C, N, O, S).
PROTEIN_ELEMENTS = ("C", "N", "O", "S")
PROTEIN_FRACTIONS = (0.627, 0.169, 0.198, 0.006)
#: Protein volume per non-hydrogen atom (Å³).
PROTEIN_VOLUME_PER_ATOM_A3 = 18.0


def table_bytes(cell, d_min: float) -> int:
    """Upper bound (bytes) of the dense float32 |F|² table of a cell to resolution d_min (Å),
    from |h| ≤ |a|/d_min, |k| ≤ |b|/d_min, |l| ≤ |c|/d_min."""
    return 4 * int(np.prod([2 * math.floor(float(edge) / d_min) + 1 for edge in cell[:3]]))


def random_structure_factors(seed, space_group: Optional[str] = None, cell=None, d_min: float = 1.0,
                             protein_fraction: float = 0.5, space_groups: Sequence[str] = PAPER_SPACE_GROUPS,
                             volume_range: Tuple[float, float] = PAPER_VOLUME_RANGE_A3,
                             max_table_bytes: int = MAX_TABLE_BYTES) -> StructureFactors:
    """|F|² table (to ``d_min`` Å) of a random protein-like structure.

    seed: anything :func:`numpy.random.default_rng` takes (a Generator is advanced by one draw);
    space_group: symbol, or None for a random one of ``space_groups``; cell: (a, b, c, α, β, γ) in
    Å and degrees, or None for a random cell of that space group (volume log-uniform on
    ``volume_range`` Å³, edge ratios within a factor 2, free angles random; drawn again until its
    table fits in ``max_table_bytes``). The asymmetric unit holds protein_fraction·V/(18 Å³·Z) atoms of
    C, N, O and S (protein proportions) at uniformly random positions with B = 0, so intensities
    follow Wilson statistics with the space group's absences, centric zones and multiplicities.
    """
    if isinstance(seed, np.random.Generator):
        seed = int(seed.integers(2 ** 63))
    return _with_cctbx("_random_structure_factors", seed=seed, space_group=space_group, cell=cell, d_min=d_min,
                       protein_fraction=protein_fraction, space_groups=tuple(space_groups),
                       volume_range=tuple(volume_range), max_table_bytes=max_table_bytes)


def structure_factors_from_model(path, d_min: float = 1.0) -> StructureFactors:
    """|F|² table (to ``d_min`` Å) of an atomic model: a PDB or mmCIF file with its unit cell and
    space group. The model's atomic displacements are set to 0 (B is applied per image)."""
    return _with_cctbx("_structure_factors_from_model", path=str(Path(path).resolve()), d_min=d_min)


# --------------------------------------------------------------------------------------------
# running cctbx safely
# --------------------------------------------------------------------------------------------
def cctbx_loads_here() -> bool:
    """True when cctbx can be imported in this process: already imported, or numba's LLVM
    library not loaded yet."""
    return "cctbx" in sys.modules or "llvmlite.binding" not in sys.modules


def _with_cctbx(function_name: str, **kwargs):
    """Call ``function_name`` of this module with cctbx available: here when safe, otherwise in a
    child process that imports cctbx first."""
    if cctbx_loads_here():
        return globals()[function_name](**kwargs)
    with tempfile.TemporaryDirectory(prefix="xrais-cctbx-") as folder:
        request, result = Path(folder, "request.pkl"), Path(folder, "result.pkl")
        request.write_bytes(pickle.dumps((function_name, kwargs)))
        bootstrap = ("import cctbx.xray, iotbx.pdb, sys; from xrais.sim import structures; "
                     "structures._serve(sys.argv[1], sys.argv[2])")
        completed = subprocess.run([sys.executable, "-c", bootstrap, str(request), str(result)],
                                   capture_output=True, text=True)
        if completed.returncode != 0:
            raise RuntimeError(f"cctbx child process failed ({function_name}):\n{completed.stderr[-4000:]}")
        return pickle.loads(result.read_bytes())


def _serve(request_path: str, result_path: str) -> None:
    """Child-process side of :func:`_with_cctbx`."""
    function_name, kwargs = pickle.loads(Path(request_path).read_bytes())
    result = globals()[function_name](**kwargs)
    Path(result_path).write_bytes(pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL))


# --------------------------------------------------------------------------------------------
# cctbx work (only called where cctbx can be imported)
# --------------------------------------------------------------------------------------------
def _random_structure_factors(seed, space_group, cell, d_min, protein_fraction, space_groups, volume_range,
                              max_table_bytes) -> StructureFactors:
    from cctbx import crystal, sgtbx, xray
    from cctbx.array_family import flex

    rng = np.random.default_rng(seed)
    if space_group is None:
        space_group = str(rng.choice(list(space_groups)))
    info = sgtbx.space_group_info(space_group)
    if cell is None:
        cell = _random_cell(info.group().crystal_system(), rng, d_min, volume_range, max_table_bytes)
    symmetry = crystal.symmetry(unit_cell=tuple(cell), space_group_info=info, assert_is_compatible_unit_cell=True)
    order = info.group().order_z()
    atoms = max(1, int(round(protein_fraction * symmetry.unit_cell().volume() / PROTEIN_VOLUME_PER_ATOM_A3 / order)))
    sites = rng.random((atoms, 3))
    elements = rng.choice(PROTEIN_ELEMENTS, size=atoms, p=PROTEIN_FRACTIONS)
    scatterers = flex.xray_scatterer()
    for index, (site, element) in enumerate(zip(sites, elements)):
        scatterers.append(xray.scatterer(label=f"{element}{index}", site=tuple(site), u=0.0,
                                         scattering_type=str(element)))
    structure = xray.structure(crystal_symmetry=symmetry, scatterers=scatterers)
    amplitudes = structure.structure_factors(d_min=d_min, algorithm="fft").f_calc().amplitudes()
    seed_text = seed.entropy if isinstance(seed, np.random.SeedSequence) else seed
    return _dense_table(amplitudes, label=f"random {info}, {atoms} atoms/asu, seed {seed_text}")


def _random_cell(system: str, rng, d_min, volume_range, max_table_bytes, attempts=1000):
    """A random cell of a crystal system whose table fits (see :func:`random_structure_factors`);
    after ``attempts`` misfits (a volume range far beyond the cap) the last one is shrunk to fit."""
    for _ in range(attempts):
        volume = math.exp(rng.uniform(math.log(volume_range[0]), math.log(volume_range[1])))
        ratio_b, ratio_c = np.exp(rng.uniform(math.log(0.5), math.log(2.0), size=2))
        alpha = beta = gamma = 90.0
        edges = (1.0, ratio_b, ratio_c)
        if system == "Triclinic":
            while True:
                alpha, beta, gamma = rng.uniform(75.0, 105.0, size=3)
                if _volume_factor(alpha, beta, gamma) > 0.5:
                    break
        elif system == "Monoclinic":
            beta = rng.uniform(90.0, 120.0)
        elif system == "Tetragonal":
            edges = (1.0, 1.0, ratio_c)
        elif system in ("Trigonal", "Hexagonal"):
            gamma = 120.0
            edges = (1.0, 1.0, ratio_c)
        elif system == "Cubic":
            edges = (1.0, 1.0, 1.0)
        scale = (volume / (edges[0] * edges[1] * edges[2] * _volume_factor(alpha, beta, gamma))) ** (1.0 / 3.0)
        cell = [scale * e for e in edges] + [alpha, beta, gamma]
        if table_bytes(cell, d_min) <= max_table_bytes:
            return tuple(float(v) for v in cell)
    while table_bytes(cell, d_min) > max_table_bytes:
        cell[:3] = [0.98 * e for e in cell[:3]]
    return tuple(float(v) for v in cell)


def _volume_factor(alpha, beta, gamma) -> float:
    ca, cb, cg = (math.cos(math.radians(x)) for x in (alpha, beta, gamma))
    return math.sqrt(max(0.0, 1.0 - ca * ca - cb * cb - cg * cg + 2.0 * ca * cb * cg))


def _structure_factors_from_model(path, d_min) -> StructureFactors:
    import iotbx.pdb

    model = iotbx.pdb.input(file_name=path)
    symmetry = model.crystal_symmetry()
    if symmetry is None or symmetry.unit_cell() is None or symmetry.space_group_info() is None:
        raise ValueError(f"{path}: no unit cell / space group in the model")
    structure = model.xray_structure_simple(crystal_symmetry=symmetry)
    structure.convert_to_isotropic()
    structure.set_b_iso(value=0.0)
    amplitudes = structure.structure_factors(d_min=d_min, algorithm="fft").f_calc().amplitudes()
    return _dense_table(amplitudes, label=path)


def _dense_table(amplitudes, label: str) -> StructureFactors:
    """Dense P1 |F|² table of a cctbx miller array of amplitudes (asymmetric unit of its space
    group): every reflection expanded by the point-group rotations and Friedel's law; F000 = 0."""
    indices = np.asarray(amplitudes.indices(), dtype=np.int32).reshape(-1, 3)
    intensities = np.asarray(amplitudes.data(), dtype=np.float64) ** 2
    keep = np.any(indices != 0, axis=1)
    indices, intensities = indices[keep], intensities[keep].astype(np.float32)
    rotations = [np.asarray(r, dtype=np.int32).reshape(3, 3) for r in
                 sorted({tuple(int(x) for x in op.r().as_double()) for op in amplitudes.space_group().all_ops()})]
    # one rotation at a time: the equivalents of a large cell do not fit in memory all at once
    extent = np.max([np.abs(indices @ rotation).max(axis=0) for rotation in rotations], axis=0)
    table = np.zeros(tuple(2 * extent + 1), dtype=np.float32)
    for rotation in rotations:
        equivalent = indices @ rotation
        table[extent[0] + equivalent[:, 0], extent[1] + equivalent[:, 1], extent[2] + equivalent[:, 2]] = intensities
        table[extent[0] - equivalent[:, 0], extent[1] - equivalent[:, 1], extent[2] - equivalent[:, 2]] = intensities
    return StructureFactors(table, tuple(int(-v) for v in extent), cell=amplitudes.unit_cell().parameters(),
                            space_group=str(amplitudes.space_group_info()), d_min=float(amplitudes.d_min()),
                            label=label)
