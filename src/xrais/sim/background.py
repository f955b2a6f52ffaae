"""Amorphous (and powder) background: air, water, and parasitic materials around the crystal.

Every material is a scatterer at the sample position, described by the squared structure factor
F²(s) of one of its molecules (electrons², orientation averaged; s = sin θ/λ in Å⁻¹). A layer of
thickness t (along the beam) holds n·t molecules per m² (n = ρ·N_A/M), so a pixel receives

    photons · r_e² · Σ_layers n·t·F²(s) · Ω · P

(Ω: pixel solid angle with obliquity; P: the polarization factor of the Bragg kernel). Curves are
coherent scattering only (like nanoBragg's amorphous model), except water, whose tabulated curve is
the measured total scattering.

Sources of the curves (see :data:`MATERIALS`):

* water: the "rough approximation to water" F(s) table of the cctbx/simtbx nanoBragg examples
  (J. Holton), consistent with the X-ray scattering of liquid water of Hura et al. (2000),
  J. Chem. Phys. 113, 9140; forward value F = 2.57 e (liquid compressibility).
* air: N₂ 78.08 %, O₂ 20.95 %, Ar 0.93 % by volume, 1.204 kg/m³ (20 °C, 1 atm); independent atoms
  with Waasmaier & Kirfel (1995) form factors plus the intramolecular Debye term of the diatomic
  molecules, bond lengths N≡N 1.098 Å and O=O 1.208 Å (Huber & Herzberg 1979).
* ice: hexagonal ice Ih powder rings computed from its structure: P6₃/mmc, a = 4.497 Å,
  c = 7.322 Å near 100 K (Röttger et al. 1994, Acta Cryst. B50, 644), O on 4f with z = 0.0625
  (Peterson & Levy 1957, Acta Cryst. 10, 70), each water scattering as f_O + 2 f_H on the O site;
  rings broadened to a Gaussian of FWHM 0.003 Å⁻¹ in 1/d.
* organics (glycerol, sucrose, PEG, MPD, paper, Kapton tape): independent-atom sum Σ f_j² times a
  liquid-like structure function S(s) = 1 − (1 − S₀)·exp(−(s/(1.2 s_p))²) + Σ A·exp(−(s − s_p)²/
  (2 (0.15 s_p)²)) with S₀ = 0.1, A = 1.1 (shape fitted to the water curve's main peak) and peaks
  at s_p = 1/(2d) for the d of each material's diffuse maxima: glycerol 4.4 Å (liquid main peak
  Q ≈ 1.43 Å⁻¹, e.g. Towey, Soper & Dougan 2011, J. Phys. Chem. B 115, 7799); PEG 4.6 and 3.8 Å
  (the strongest reflections of poly(ethylene oxide), Takahashi & Tadokoro 1973, Macromolecules 6,
  672); paper 6.0, 5.3 and 3.9 Å (cellulose Iβ 1‾10, 110, 200; Nishiyama, Langan & Chanzy 2002,
  J. Am. Chem. Soc. 124, 9074); sucrose glass 4.5 Å, MPD 5.0 Å and Kapton 4.8 Å are typical
  first diffuse maxima of molecular organic glasses/liquids (van der Waals contacts), approximate
  values without a specific measurement behind them. Densities: CRC Handbook values (glycerol
  1.261, sucrose 1.587, MPD 0.925, PEG 1.13 g/cm³), Kapton 1.42 g/cm³ (DuPont), paper 0.8 g/cm³
  (cellulose 1.5 g/cm³ with the porosity of paper).
"""
from __future__ import annotations

import dataclasses
import functools
import math
from typing import Callable, Dict, Sequence, Tuple, Union

import numpy as np

from ..io.geometry import Geometry
from .beam import R_E_SQUARED_M2, Beam
from .frame import DetectorFrame, as_detector_frame, resolve_window
from .kernels import coprime_stride, render_isotropic_cpu

AVOGADRO = 6.02214076e23
#: Uniform sin(θ)/λ grid (Å⁻¹) the curves are tabulated on for the kernel.
STOL_STEP = 2e-4
STOL_MAX = 2.0

#: Waasmaier & Kirfel (1995), Acta Cryst. A51, 416: f0(s) = Σ a_i exp(−b_i s²) + c, s = sin θ/λ (Å⁻¹)
#: (values as distributed with cctbx.eltbx.xray_scattering.wk1995).
WAASMAIER_KIRFEL = {
    "H": ((-0.117104, 0.009349, 0.270069, 0.284341, 0.552872), (3.059847, 0.746558, 3.291786, 32.645653, 11.546356), 0.0),
    "C": ((2.657506, 1.078079, 1.490909, -4.241070, 0.713791), (14.780758, 0.776775, 42.086842, -0.000294, 0.239535), 4.297983),
    "N": ((11.893780, 3.277479, 1.858092, 0.858927, 0.912985), (0.000158, 10.232723, 30.344690, 0.656065, 0.217287), -11.804902),
    "O": ((2.960427, 2.508818, 0.637853, 0.722838, 1.142756), (14.182259, 5.936858, 0.112726, 34.958481, 0.390240), 0.027014),
    "S": ((6.372157, 5.154568, 1.473732, 1.635073, 1.209372), (1.514347, 22.092527, 0.061373, 55.445175, 0.646925), 0.154722),
    "Ar": ((7.188004, 6.638454, 0.454180, 1.929593, 1.523654), (0.956221, 15.339877, 15.339862, 39.043823, 0.062409), 0.265954),
}
#: Standard atomic weights (g/mol).
ATOMIC_WEIGHTS = {"H": 1.008, "C": 12.011, "N": 14.007, "O": 15.999, "S": 32.06, "Ar": 39.948}


def form_factor(element: str, stol) -> np.ndarray:
    """Atomic scattering factor f0 (electrons) at sin θ/λ = stol (Å⁻¹)."""
    a, b, c = WAASMAIER_KIRFEL[element]
    stol = np.asarray(stol, dtype=float)
    return sum(ai * np.exp(-bi * stol * stol) for ai, bi in zip(a, b)) + c


def independent_atom_sum(formula, stol) -> np.ndarray:
    """Σ_j n_j f_j² (electrons²) of a formula ((element, count), ...)."""
    return sum(count * form_factor(element, stol) ** 2 for element, count in formula)


@dataclasses.dataclass(frozen=True)
class Material:
    """An amorphous or powder scatterer.

    formula: ((element, atoms per molecule), ...); density: g/cm³; squared_structure_factor:
    F²(stol) per molecule (electrons², stol in Å⁻¹); source: where the curve comes from.
    """

    name: str
    formula: Tuple[Tuple[str, float], ...]
    density: float
    squared_structure_factor: Callable[[np.ndarray], np.ndarray]
    source: str

    @property
    def molecular_weight(self) -> float:
        """g/mol of one molecule (formula unit)."""
        return float(sum(count * ATOMIC_WEIGHTS[element] for element, count in self.formula))

    @property
    def molecules_per_m3(self) -> float:
        return self.density * 1e6 * AVOGADRO / self.molecular_weight


# --------------------------------------------------------------------------------------------
# curve models
# --------------------------------------------------------------------------------------------
WATER_TABLE = ((0.0, 2.57), (0.0365, 2.58), (0.07, 2.8), (0.12, 5.0), (0.162, 8.0), (0.18, 7.32), (0.2, 6.75),
               (0.216, 6.75), (0.236, 6.5), (0.28, 4.5), (0.3, 4.3), (0.345, 4.36), (0.436, 3.77), (0.5, 3.17))


def _water(stol):
    table = np.asarray(WATER_TABLE)
    return np.interp(stol, table[:, 0], table[:, 1]) ** 2


AIR_FRACTIONS = (("N2", 0.7808), ("O2", 0.2095), ("Ar", 0.0093))
BOND_LENGTHS_A = {"N2": 1.098, "O2": 1.208}


def _air(stol):
    stol = np.asarray(stol, dtype=float)
    total = np.zeros_like(stol)
    for species, fraction in AIR_FRACTIONS:
        if species in BOND_LENGTHS_A:
            f = form_factor(species[0], stol)
            x = 4.0 * math.pi * stol * BOND_LENGTHS_A[species]
            total += fraction * 2.0 * f * f * (1.0 + np.sinc(x / math.pi))
        else:
            total += fraction * form_factor(species, stol) ** 2
    return total


LIQUID_S0 = 0.1
LIQUID_PEAK_HEIGHT = 1.1
LIQUID_PEAK_WIDTH = 0.15
LIQUID_LOW_ANGLE = 1.2


def _liquid_curve(formula, peak_d):
    """Σ f_j² × S(s), S the liquid-like structure function of the module docstring."""

    def curve(stol):
        stol = np.asarray(stol, dtype=float)
        first = 1.0 / (2.0 * peak_d[0])
        structure = 1.0 - (1.0 - LIQUID_S0) * np.exp(-(stol / (LIQUID_LOW_ANGLE * first)) ** 2)
        for d in peak_d:
            peak = 1.0 / (2.0 * d)
            structure += LIQUID_PEAK_HEIGHT * np.exp(-(stol - peak) ** 2 / (2.0 * (LIQUID_PEAK_WIDTH * peak) ** 2))
        return independent_atom_sum(formula, stol) * structure

    return curve


ICE_CELL_A = (4.497, 7.322)
ICE_OXYGEN_Z = 0.0625
ICE_RING_FWHM = 0.003


@functools.lru_cache(maxsize=1)
def ice_rings() -> Tuple[np.ndarray, np.ndarray]:
    """(positions |G| = 1/d (Å⁻¹), weights Σ|F_G|²/(4π|G|²·Z·V) (electrons² Å per molecule)) of the
    ice Ih powder rings out to the tabulated grid's end."""
    a, c = ICE_CELL_A
    volume = math.sqrt(3.0) / 2.0 * a * a * c
    z = ICE_OXYGEN_Z
    sites = np.array([(1 / 3, 2 / 3, z), (2 / 3, 1 / 3, 0.5 + z), (2 / 3, 1 / 3, -z), (1 / 3, 2 / 3, 0.5 - z)])
    limit = 1.0 / (STOL_MAX * 0.5)  # d_min of the grid's end
    h_max, l_max = int(a / limit) + 2, int(c / limit) + 2
    h, k, l = np.meshgrid(np.arange(-h_max, h_max + 1), np.arange(-h_max, h_max + 1), np.arange(-l_max, l_max + 1),
                          indexing="ij")
    h, k, l = h.ravel(), k.ravel(), l.ravel()
    g_sqr = 4.0 / 3.0 * (h * h + h * k + k * k) / (a * a) + l * l / (c * c)
    keep = (g_sqr > 0) & (g_sqr <= (2.0 * STOL_MAX) ** 2)
    h, k, l, g = h[keep], k[keep], l[keep], np.sqrt(g_sqr[keep])
    phases = 2j * math.pi * (np.outer(h, sites[:, 0]) + np.outer(k, sites[:, 1]) + np.outer(l, sites[:, 2]))
    geometric = np.abs(np.exp(phases).sum(axis=1)) ** 2
    molecule = form_factor("O", g / 2.0) + 2.0 * form_factor("H", g / 2.0)
    weights = geometric * molecule ** 2 / (4.0 * math.pi * g * g) / (len(sites) * volume)
    rings, ring_index = np.unique(np.round(g, 9), return_inverse=True)
    ring_weights = np.bincount(ring_index, weights=weights)
    present = ring_weights > 1e-9 * ring_weights.max()  # systematic absences left out
    return rings[present], ring_weights[present]


def _ice(stol):
    """Orientation-averaged powder scattering per molecule of ice Ih:
    (1/(Z·V)) Σ_G |F_G|² g(2s − |G|)/(4π|G|²), g a normalized Gaussian of FWHM 0.003 Å⁻¹."""
    stol = np.asarray(stol, dtype=float)
    sigma = ICE_RING_FWHM / (2.0 * math.sqrt(2.0 * math.log(2.0)))
    total = np.zeros_like(stol)
    x = 2.0 * stol
    for position, weight in zip(*ice_rings()):
        close = np.abs(x - position) < 8.0 * sigma
        total[close] += weight * np.exp(-0.5 * ((x[close] - position) / sigma) ** 2) / (sigma * math.sqrt(2 * math.pi))
    return total


def _ice_density() -> float:
    a, c = ICE_CELL_A
    volume_cm3 = math.sqrt(3.0) / 2.0 * a * a * c * 1e-24
    return 4 * (2 * ATOMIC_WEIGHTS["H"] + ATOMIC_WEIGHTS["O"]) / (AVOGADRO * volume_cm3)


def _formula(**counts) -> Tuple[Tuple[str, float], ...]:
    return tuple(counts.items())


_AIR_FORMULA = _formula(N=2 * 0.7808, O=2 * 0.2095, Ar=0.0093)
_ORGANICS = {
    # name: (formula, density g/cm³, diffuse maxima d (Å), source)
    "glycerol": (_formula(C=3, H=8, O=3), 1.261, (4.4,), "liquid main peak Q ≈ 1.43 Å⁻¹ (Towey, Soper & Dougan 2011)"),
    "sucrose": (_formula(C=12, H=22, O=11), 1.587, (4.5,), "typical organic-glass diffuse maximum (approximate)"),
    "peg": (_formula(C=2, H=4, O=1), 1.13, (4.6, 3.8), "poly(ethylene oxide) reflections (Takahashi & Tadokoro 1973)"),
    "mpd": (_formula(C=6, H=14, O=2), 0.925, (5.0,), "typical organic-liquid diffuse maximum (approximate)"),
    "paper": (_formula(C=6, H=10, O=5), 0.8, (6.0, 5.3, 3.9), "cellulose Iβ 1-10, 110, 200 (Nishiyama et al. 2002)"),
    "kapton": (_formula(C=22, H=10, N=2, O=5), 1.42, (4.8,), "typical polyimide diffuse maximum (approximate)"),
}

#: Every material by name (see the module docstring for the sources).
MATERIALS: Dict[str, Material] = {
    "water": Material("water", _formula(H=2, O=1), 1.0, _water, "simtbx water table (Holton); Hura et al. 2000"),
    "air": Material("air", _AIR_FORMULA, 1.204e-3, _air, "Waasmaier & Kirfel 1995 + diatomic Debye term"),
    "ice": Material("ice", _formula(H=2, O=1), _ice_density(), _ice, "ice Ih powder (Röttger et al. 1994)"),
}
MATERIALS.update({name: Material(name, formula, density, _liquid_curve(formula, peaks), source)
                  for name, (formula, density, peaks, source) in _ORGANICS.items()})
#: Parasitic materials of the paper's background recipe (Appendix A1.4).
PARASITIC_MATERIALS = ("glycerol", "sucrose", "peg", "mpd", "ice", "paper", "kapton")

Layer = Tuple[Union[str, Material], float]


def material(name: Union[str, Material]) -> Material:
    """A :class:`Material` by name (or passed through)."""
    if isinstance(name, Material):
        return name
    try:
        return MATERIALS[name.lower()]
    except KeyError:
        raise KeyError(f"unknown material {name!r}; known: {', '.join(MATERIALS)}") from None


@functools.lru_cache(maxsize=None)
def _tabulated(chosen: Material) -> np.ndarray:
    return chosen.squared_structure_factor(np.arange(0.0, STOL_MAX + STOL_STEP / 2, STOL_STEP))


def scattering_curve(layers: Sequence[Layer]) -> np.ndarray:
    """Σ_layers (molecules per m²)·F²(s) on the grid s = 0, STOL_STEP, ..., STOL_MAX (Å⁻¹).

    layers: (material or name, thickness in mm along the beam) pairs.
    """
    total = np.zeros(int(round(STOL_MAX / STOL_STEP)) + 1)
    for name, thickness_mm in layers:
        if thickness_mm < 0:
            raise ValueError(f"layer thickness must be ≥ 0 mm, got {thickness_mm}")
        chosen = material(name)
        total += chosen.molecules_per_m3 * thickness_mm * 1e-3 * _tabulated(chosen)
    return total


def render_background(layers: Sequence[Layer], beam: Beam, detector: Union[DetectorFrame, Geometry], *,
                      photons: float, window=None, window_only: bool = False) -> np.ndarray:
    """Expected background photons per pixel, float32 (slow, fast); zero outside ``window``.

    layers: (material or name, thickness mm) pairs, e.g. the paper's
    [("air", 5.0), ("water", 0.025), ("glycerol", 0.025)]; beam: wavelength (Å), direction and
    polarization (its fluence is not used); photons: incident photons through the layers;
    window_only: return the window's pixels alone (an array of the window's shape).
    Scale the result for the paper's background factor (0.0125–1.25).
    """
    frame = as_detector_frame(detector)
    window = resolve_window(window, frame.shape)
    image = np.zeros(window.shape if window_only else frame.shape, dtype=np.float32)
    if window.size == 0:
        return image
    curve = float(photons) * R_E_SQUARED_M2 * scattering_curve(layers)
    # the kernel's detector frame, moved so that the window's first pixel is its pixel (0, 0)
    packed = frame.as_array()
    if window_only:
        packed[0:3] += packed[12] * (window.slow_start * packed[6:9] + window.fast_start * packed[3:6])
        rows, columns = (0, window.shape[0]), (0, window.shape[1])
    else:
        rows, columns = (window.slow_start, window.slow_stop), (window.fast_start, window.fast_stop)
    render_isotropic_cpu(image, rows[0], rows[1], columns[0], columns[1], coprime_stride(window.shape[0]), packed,
                         beam.polarization_array(), float(beam.wavelength), curve, STOL_STEP)
    return image


#: Azimuthal bins (per ring) of a spotty ice ring's modulation: 0.02°, finer than any spot width drawn.
ICE_AZIMUTH_BINS = 18000


@dataclasses.dataclass(frozen=True)
class IceRings:
    """Crystalline ice Ih in the beam (a sample frozen too slowly, or frost), rendered as its powder
    rings (:func:`render_ice`).

    thickness_um: ice along the beam (µm); spots_per_ring: 0 for smooth rings (a fine powder of
    many small crystallites), else the mean number of crystallite reflections on each ring (few
    larger crystallites: each reflection a spot on its ring, at a random azimuth, of exponentially
    distributed strength, as the Bragg reflections of a randomly oriented crystal); spot_width_deg:
    each spot's azimuthal FWHM (degrees; the crystallites' mosaic spread); smooth_fraction: the
    share of each ring's intensity left smooth (a powder beside the crystallites); seed: of the
    spots. The rings' total intensity is the powder's whatever the spottiness.
    """

    thickness_um: float
    spots_per_ring: float = 0.0
    spot_width_deg: float = 0.5
    smooth_fraction: float = 1.0
    seed: int = 0

    def __post_init__(self):
        if not (self.thickness_um >= 0 and self.spots_per_ring >= 0 and self.spot_width_deg > 0
                and 0.0 <= self.smooth_fraction <= 1.0):
            raise ValueError(f"nonsensical ice: {self}")

    @property
    def spotty(self) -> bool:
        return self.spots_per_ring > 0 and self.smooth_fraction < 1.0


def ice_azimuth_tables(ice: IceRings, n_rings: int) -> np.ndarray:
    """float32 (n_rings, :data:`ICE_AZIMUTH_BINS`): per ring, the intensity relative to a smooth
    ring's at each azimuth (mean 1): smooth_fraction + (1 − smooth_fraction)·(the ring's spots,
    Gaussians of FWHM spot_width_deg at random azimuths with exponential weights, normalised to mean
    1); a ring that draws no spot keeps its smooth part only."""
    rng = np.random.default_rng(ice.seed)
    bins = ICE_AZIMUTH_BINS
    sigma_bins = ice.spot_width_deg / (2.0 * math.sqrt(2.0 * math.log(2.0))) * bins / 360.0
    offsets = np.arange(-int(math.ceil(5 * sigma_bins)), int(math.ceil(5 * sigma_bins)) + 1)
    profile = np.exp(-0.5 * (offsets / sigma_bins) ** 2)
    tables = np.full((n_rings, bins), ice.smooth_fraction, dtype=np.float64)
    for ring in range(n_rings):
        n_spots = rng.poisson(ice.spots_per_ring)
        if n_spots == 0:
            continue
        spots = np.zeros(bins)
        centres = rng.integers(0, bins, n_spots)
        strengths = rng.exponential(1.0, n_spots)
        for centre, strength in zip(centres, strengths):
            np.add.at(spots, (centre + offsets) % bins, strength * profile)
        tables[ring] += (1.0 - ice.smooth_fraction) * spots / spots.mean()
    return tables.astype(np.float32)


def render_ice(ice: IceRings, beam: Beam, detector: Union[DetectorFrame, Geometry], *, photons: float,
               window=None) -> np.ndarray:
    """Expected photons per pixel of the ice's rings on the pixels of ``window`` (float32, the
    window's shape): the powder curve of :func:`render_background`, each pixel multiplied, if the
    ice is spotty, by its ring's azimuthal table (:func:`ice_azimuth_tables`) at its azimuth about
    the beam; the pixel belongs to the ring nearest in 1/d. Scale as the background."""
    frame = as_detector_frame(detector)
    window = resolve_window(window, frame.shape)
    smooth = render_background([("ice", ice.thickness_um * 1e-3)], beam, frame, photons=photons, window=window,
                               window_only=True)
    if not ice.spotty or window.size == 0:
        return smooth
    slow = np.arange(window.slow_start, window.slow_stop) + 0.5
    fast = np.arange(window.fast_start, window.fast_stop) + 0.5
    position = np.asarray(frame.pix0) + frame.pixel_size * (fast[None, :, None] * np.asarray(frame.fdet)
                                                            + slow[:, None, None] * np.asarray(frame.sdet))
    direction = np.asarray(beam.direction, dtype=float)
    direction = direction / np.linalg.norm(direction)
    along = position @ direction
    across = position - along[..., None] * direction
    length = np.linalg.norm(position, axis=-1)
    two_theta = np.arccos(np.clip(along / length, -1.0, 1.0))
    inverse_d = 2.0 * np.sin(0.5 * two_theta) / beam.wavelength
    reference = np.cross(direction, [0.0, 0.0, 1.0] if abs(direction[2]) < 0.9 else [0.0, 1.0, 0.0])
    reference /= np.linalg.norm(reference)
    other = np.cross(direction, reference)
    azimuth = np.arctan2(across @ other, across @ reference)
    positions, _ = ice_rings()
    ring = np.clip(np.searchsorted(0.5 * (positions[1:] + positions[:-1]), inverse_d), 0, len(positions) - 1)
    tables = ice_azimuth_tables(ice, len(positions))
    column = (np.floor((azimuth + math.pi) / (2.0 * math.pi) * ICE_AZIMUTH_BINS).astype(np.int64)) % ICE_AZIMUTH_BINS
    return (smooth * tables[ring, column]).astype(np.float32)
