"""Training-image recipes: how the parameters of every simulated image are drawn (paper Appendix A1),
as plain numbers, reproducibly from (seed, image index).

Two recipes, as in the paper, each widened where real data are wider than the paper's simulations
(so the models do not learn the simulator's quirks):

* ``resolution`` (A1, section 2.1.1): PILATUS 6M and EIGER 16M / EIGER2 XE 16M geometries, plus the
  smaller EIGER 4M and PILATUS 2M (quadrants that run off the detector); resolution labels spread
  evenly in 1/d; B from the label relation; mosaic spread 0.05–1°; one lattice; a few % blank images;
  Gaussian read noise (0.3–4 photons RMS) on half the images, as integrating detectors and
  pedestal-subtracted data record, so that a noise floor is not taken for the end of diffraction.
* ``multilattice`` (section 2.1.2): 50 % one lattice, 25 % two, 25 % three; extra lattices rotated
  about random axes by angles ~ N(0, σ²) with the paper's variances σ² ∈ {0.1, 1, 10} deg²
  (σ = 0.32°, 1°, 3.2°), redrawn below :data:`MIN_SPLIT_DEG` (0.3°): a lattice turned by less than
  the angular width of its reflections (≈ 0.1–0.3° for the recipe's 0.05–0.15 µm domains) lights
  up the same reflections at the same places, an image that data processing indexes as one
  lattice with a little more mosaicity, not a split crystal; d 1.2–4 Å; the Rayonix MX340-HS
  format of the paper, plus PILATUS/EIGER (the paper found the model transfers). Since v5 the
  single crystals are as loose as measured ones (v4's, with a mosaic spread of 0.001–0.01°, fitted
  their lattice 3–5× more tightly than measured single crystals do, and the lattice evidence then
  read every measured single as split): mosaic spread log-uniform 0.02–0.5° over 10–25 domains,
  every lattice alike; half the images rotation frames, a wedge log-uniform 0.05–1° about a
  spindle ⊥ the beam (the detector's fast or slow axis), integrated as domains spread evenly over
  the wedge (:func:`xrais.sim.crystal.rotation_exposure`; at least one every
  :data:`ROTATION_STEP_DEG`); and the geometry in the image's header off the true one as at a
  beamline (beam centre by N(0, 0.7 px) per axis, distance by N(0, 0.3 %)).

Paper values kept: mosaic domains 0.05/0.1/0.15 µm, beam 30 µm with 0.02 mrad divergence,
background of 5 mm air + 25 µm water + 25 µm of one parasitic material, scaled by 0.0125–1.25
(log-uniform here), beamstop < 15 mm, 0–5 hot pixels at 2^16, up to 124 dead pixels.
Widened: distance 150–400 mm (paper 200–300), wavelength 0.75–1.35 Å (paper fixed 0.9795 Å), beam
centre off the detector centre by up to 12 mm, spectral bandwidth, photons 2e11–8e11 (paper 4e11),
crystal edge log-uniform 8–40 µm (paper 25 µm) in both recipes (multi-lattice v3: 20–30 µm). As at a beamline, where the distance is chosen so that the expected
resolution lands on the detector, a resolution image's distance is drawn (within 150–400 mm) so that
its label's resolution ring crosses the rendered quadrant, out to its far corner: a ring past the
quadrant's edges is partly visible, as on the best frames of a scan, while a label beyond the
corner could only be guessed. In the resolution recipe the crystal's edge is drawn log-uniform over
8–40 µm (paper 25 µm), independently of B and of the background, as crystal size and flux are in
experiments: the overall Bragg scale spans 2.7 decades, so that the label (the B factor's decay
*rate* with resolution) cannot be read from the overall brightness of the spots.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Dict, Optional, Tuple

import numpy as np

from ..io import detectors
from .crystal import axis_angle_rotation, random_rotation
from .labels import b_factor_from_resolution

RECIPES = ("resolution", "multilattice")
#: Bumped whenever a recipe's draws change, so that shards of an older recipe are never mixed with
#: new ones. Resolution v4: labels out to the quadrant's corner, small detectors, read noise.
#: Multilattice v3: the paper's variances (not standard deviations) of the misorientation, splits
#: of at least 0.3°, 2–5 mosaic domains.
#: Resolution v5: crystal volume over 2 decades, independent of B. Multilattice v4: the same for the
#: multi-lattice recipe (crystal edge log-uniform 8–40 µm). Multilattice v5: mosaic spread 0.02–0.5°,
#: rotation frames, header geometry off the true one. Resolution v6: rotation frames as the
#: multi-lattice recipe's, crystalline ice (smooth and spotty rings) on a third of the images.
RECIPE_VERSIONS = {"resolution": 6, "multilattice": 5}

#: Fraction of blank images (no crystal: background, noise and masks only) in every recipe.
BLANK_FRACTION = 0.04
#: Resolution labels: 1/d uniform on this range (Å⁻¹): d from 20 Å down to 1.2 Å.
INVERSE_D_RANGE = (0.05, 1.0 / 1.2)
#: Multi-lattice recipe: crystals that diffract visibly (d from 4 Å to 1.2 Å), since lattices can only
#: be counted from spots.
MULTILATTICE_INVERSE_D_RANGE = (0.25, 1.0 / 1.2)
#: Smallest misorientation (degrees) of an extra lattice: below it the lattices' reflections
#: coincide (their angular width, ≈ 1/(domain size · |q|), is 0.1–0.3° at 2 Å for 0.05–0.15 µm
#: domains) and the image is, physically and for data processing, single-lattice.
MIN_SPLIT_DEG = 0.3
#: Resolution recipe: fraction of photon-counting images recorded with Gaussian read noise (as
#: integrating detectors, pedestal-subtracted or converted data record), and its RMS range
#: (photons, log-uniform).
READ_NOISE_FRACTION = 0.5
READ_NOISE_RANGE_PHOTONS = (0.3, 4.0)
PARASITIC_MATERIALS = ("glycerol", "sucrose", "peg", "mpd", "ice", "paper", "kapton")
RESOLUTION_DETECTORS = (("PILATUS 6M", 0.35), ("EIGER 16M", 0.2), ("EIGER2 XE 16M", 0.2), ("EIGER 4M", 0.15),
                        ("PILATUS 2M", 0.1))
MULTILATTICE_DETECTORS = (("Rayonix MX340-HS", 0.5), ("PILATUS 6M", 0.25), ("EIGER 16M", 0.25))
#: Standard deviations (degrees) of the extra lattices' misorientation: the square roots of the
#: paper's variances 0.1, 1 and 10 deg².
MULTILATTICE_SIGMAS_DEG = (math.sqrt(0.1), 1.0, math.sqrt(10.0))
#: Mosaic domains per lattice, [low, high) of a uniform integer draw: spreads reaching past the
#: reflections' angular width (≈ 0.1–0.3°) need many, or one crystal renders as a few split ones.
MOSAIC_DOMAINS = {"resolution": (10, 26), "multilattice": (10, 26)}
#: Multi-lattice recipe: mosaic spread (degrees, log-uniform; the largest domain rotation, as nanoBragg).
MULTILATTICE_MOSAIC_DEG = (0.02, 0.5)
#: Share of rotation frames, their wedge (degrees, log-uniform), and the widest step between the
#: domains that integrate the wedge (degrees; a reflection is ≈ 0.1° wide); both recipes.
ROTATION_FRACTION = 0.5
ROTATION_WEDGE_DEG = (0.05, 1.0)
ROTATION_STEP_DEG = 0.05
#: The most mosaic domains an image renders (rotation frames of wide wedges).
MAX_DOMAINS = 30
#: Resolution recipe: share of images with crystalline ice in the beam, its thickness (µm,
#: log-uniform: with the water layer and the background scale, rings from barely visible to many
#: times the background), the share of those whose rings are spotty, and the spotty rings' spots
#: per ring (log-uniform: a few large crystallites to many), spot FWHM (degrees, log-uniform) and
#: smooth share (uniform).
ICE_FRACTION = 1.0 / 3.0
ICE_THICKNESS_UM = (0.3, 30.0)
SPOTTY_ICE_FRACTION = 0.5
ICE_SPOTS_PER_RING = (3.0, 300.0)
ICE_SPOT_WIDTH_DEG = (0.1, 2.0)
ICE_SMOOTH_FRACTION = (0.0, 0.6)
#: Spindle axes of rotation frames (the detector's fast or slow axis, in the simulator's lab frame).
SPINDLES = ("fast", "slow")
#: Multi-lattice recipe: how far the header's geometry is off the true one, as standard deviations:
#: the beam centre (pixels, per axis; drawn within ±3σ) and the distance (fraction of it). Header
#: beam centres at beamlines are typically right to a pixel or so and distances to a few 0.1 %.
HEADER_BEAM_ERROR_PX = 0.7
HEADER_DISTANCE_ERROR_FRACTION = 0.003
DISTANCE_RANGE_MM = (150.0, 400.0)
DOMAIN_SIZES_UM = (0.05, 0.1, 0.15)
#: Crystal edge (µm), log-uniform, of the resolution recipe: volumes over 2.1 decades (× photons
#: 2–8·10¹¹: Bragg scale over 2.7 decades), drawn independently of B and of the background.
RESOLUTION_CRYSTAL_SIZE_UM = (8.0, 40.0)
#: Crystal edge (µm), log-uniform, of the multi-lattice recipe (v4; v3 drew 20–30 µm uniformly, the
#: paper's 25 µm widened): volumes over 2.1 decades, so that the overall scale varies independently of
#: the number of lattices.
MULTILATTICE_CRYSTAL_SIZE_UM = (8.0, 40.0)


@dataclasses.dataclass
class ImageSpec:
    """Every parameter of one simulated training image (units in the names).

    The crystal orientation is a rotation (3×3, row-major) applied to the crystal's default
    setting; lattice_rotations holds the extra rotations of lattices 2 and 3 relative to lattice 1,
    lattice_split_deg the smallest of their angles (0 with one lattice).
    """

    recipe: str
    index: int
    seed: int
    detector: str
    distance_mm: float
    wavelength_A: float
    bandwidth_fraction: float
    beam_centre_px: Tuple[float, float]
    blank: bool
    resolution_A: float
    b_factor: float
    structure_index: int
    orientation: Tuple[float, ...]
    n_lattices: int
    lattice_sigma_deg: float
    lattice_rotations: Tuple[Tuple[float, ...], ...]
    lattice_split_deg: float
    mosaic_spread_deg: float
    mosaic_domains: int
    domain_size_um: float
    crystal_size_um: float
    photons: float
    beam_size_um: float
    divergence_mrad: float
    air_path_mm: float
    water_um: float
    parasitic: str
    parasitic_um: float
    background_scale: float
    beamstop_radius_mm: float
    n_hot_pixels: int
    n_dead_pixels: int
    psf_fwhm_px: float
    quadrant: int
    read_noise_photons: float
    #: The geometry written in the image's header less the true one: beam centre (fast, slow
    #: pixels) and distance (mm). Images are rendered with the true geometry; readers, spot finders
    #: and indexers see the header's.
    header_beam_error_px: Tuple[float, float] = (0.0, 0.0)
    header_distance_error_mm: float = 0.0
    #: Rotation exposure: the wedge (degrees; 0 for a still) turned about the spindle (one of
    #: :data:`SPINDLES`) while the image is recorded, centred on ``orientation``.
    rotation_wedge_deg: float = 0.0
    spindle: str = "fast"
    #: Crystalline ice in the beam (:class:`~xrais.sim.background.IceRings`): thickness (µm; 0: none),
    #: spots per ring (0: smooth rings), the spots' azimuthal FWHM (degrees) and the smooth share.
    ice_um: float = 0.0
    ice_spots_per_ring: float = 0.0
    ice_spot_width_deg: float = 0.5
    ice_smooth_fraction: float = 1.0

    @property
    def inverse_d(self) -> float:
        """Label 1/d (Å⁻¹); 0 for a blank image (no diffraction)."""
        return 0.0 if self.blank else 1.0 / self.resolution_A

    @property
    def is_multi(self) -> int:
        return int(self.n_lattices > 1)

    def label_columns(self) -> Dict[str, object]:
        """Flat, named label columns for the dataset table (every sampled parameter included)."""
        model = detectors.get(self.detector)
        columns = {
            "inverse_d": self.inverse_d,
            "resolution": math.inf if self.blank else self.resolution_A,
            "b_factor": self.b_factor,
            "n_lattices": self.n_lattices,
            "is_multi": self.is_multi,
            "blank": int(self.blank),
            "distance": self.distance_mm,
            "wavelength": self.wavelength_A,
            "pixel_size": model.pixel_size,
            "downsample": model.downsample,
            "detector": self.detector,
            "quadrant": self.quadrant,
            "beam_centre_fast": self.beam_centre_px[0],
            "beam_centre_slow": self.beam_centre_px[1],
            "header_beam_error_fast": self.header_beam_error_px[0],
            "header_beam_error_slow": self.header_beam_error_px[1],
        }
        for field in dataclasses.fields(self):
            if field.name in ("orientation", "lattice_rotations", "beam_centre_px", "detector", "blank",
                              "header_beam_error_px"):
                continue
            columns.setdefault(field.name, getattr(self, field.name))
        return columns


def _choose(rng, weighted):
    names, weights = zip(*weighted)
    return names[rng.choice(len(names), p=np.asarray(weights) / sum(weights))]


def _log_uniform(rng, low, high):
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def sample_spec(recipe: str, index: int, seed: int, n_structures: int,
                detector: Optional[str] = None) -> ImageSpec:
    """Parameters of training image ``index`` of a recipe (same (seed, index) → same parameters).

    detector: force one catalogue detector (e.g. a geometry never seen in training, for tests).
    """
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose one of {', '.join(RECIPES)}")
    rng = np.random.default_rng([seed, index, RECIPES.index(recipe)])
    detector = detector or _choose(rng, RESOLUTION_DETECTORS if recipe == "resolution" else MULTILATTICE_DETECTORS)
    model = detectors.get(detector)
    offset_mm = rng.uniform(-12.0, 12.0, 2)
    beam_centre = (model.shape[1] / 2 + offset_mm[0] / model.pixel_size, model.shape[0] / 2 + offset_mm[1] / model.pixel_size)
    blank = bool(rng.random() < BLANK_FRACTION)
    wavelength = float(rng.uniform(0.75, 1.35))
    quadrant = int(rng.integers(4))
    if recipe == "resolution":
        # Labels the rendered quadrant can show: up to the ring reaching its far corner at the
        # shortest distance; then a distance at which that ring lies on the quadrant (a ring past
        # the quadrant's edges is partly visible, as the best frames of a scan often are).
        reach = quadrant_reach_mm(model, beam_centre, quadrant)
        best = 2.0 * math.sin(0.5 * math.atan(reach / DISTANCE_RANGE_MM[0])) / wavelength
        resolution = 1.0 / rng.uniform(INVERSE_D_RANGE[0], min(INVERSE_D_RANGE[1], best))
        distance = float(rng.uniform(*DISTANCE_RANGE_MM))
        while ring_radius_mm(resolution, wavelength, distance) > reach:
            distance = float(rng.uniform(DISTANCE_RANGE_MM[0], distance))
    else:
        resolution = 1.0 / rng.uniform(*MULTILATTICE_INVERSE_D_RANGE)
        distance = float(rng.uniform(*DISTANCE_RANGE_MM))
    if recipe == "resolution":
        n_lattices, sigma, mosaic = 1, 0.0, rng.uniform(0.05, 1.0)
    else:
        n_lattices = int(rng.choice([1, 2, 3], p=[0.5, 0.25, 0.25]))
        sigma = float(rng.choice(MULTILATTICE_SIGMAS_DEG))
        mosaic = _log_uniform(rng, *MULTILATTICE_MOSAIC_DEG)
    rotations, splits = [], []
    for _ in range(n_lattices - 1):
        axis = rng.normal(size=3)
        angle_deg = rng.normal(0.0, sigma)
        while abs(angle_deg) < MIN_SPLIT_DEG:
            angle_deg = rng.normal(0.0, sigma)
        splits.append(abs(angle_deg))
        rotations.append(tuple(axis_angle_rotation(axis, math.radians(angle_deg)).ravel()))
    spec = ImageSpec(
        recipe=recipe, index=index, seed=seed, detector=detector,
        distance_mm=distance,
        wavelength_A=wavelength,
        bandwidth_fraction=float(rng.choice([0.0, 1e-4, 1e-3, 5e-3], p=[0.4, 0.3, 0.2, 0.1])),
        beam_centre_px=(float(beam_centre[0]), float(beam_centre[1])),
        blank=blank,
        resolution_A=float(resolution),
        b_factor=float(b_factor_from_resolution(resolution)),
        structure_index=int(rng.integers(n_structures)),
        orientation=tuple(random_rotation(rng).ravel()),
        n_lattices=0 if blank else n_lattices,
        lattice_sigma_deg=float(sigma),
        lattice_rotations=tuple(rotations),
        lattice_split_deg=float(min(splits)) if splits and not blank else 0.0,
        mosaic_spread_deg=float(mosaic),
        mosaic_domains=int(rng.integers(*MOSAIC_DOMAINS[recipe])),
        domain_size_um=float(rng.choice(DOMAIN_SIZES_UM)),
        crystal_size_um=_log_uniform(rng, *(RESOLUTION_CRYSTAL_SIZE_UM if recipe == "resolution"
                                            else MULTILATTICE_CRYSTAL_SIZE_UM)),
        photons=_log_uniform(rng, 2e11, 8e11),
        beam_size_um=30.0,
        divergence_mrad=0.02,
        air_path_mm=5.0,
        water_um=25.0,
        parasitic=str(rng.choice(PARASITIC_MATERIALS)),
        parasitic_um=25.0,
        background_scale=_log_uniform(rng, 0.0125, 1.25),
        beamstop_radius_mm=float(rng.uniform(1.0, 15.0)),
        n_hot_pixels=int(rng.integers(0, 6)),
        n_dead_pixels=int(rng.integers(0, 125)),
        psf_fwhm_px=float(rng.choice([0.0, 0.0, 0.5, 1.0])),
        quadrant=quadrant,
        read_noise_photons=_read_noise(recipe, model, rng),
    )
    if recipe == "multilattice":
        spec = dataclasses.replace(spec, **_header_errors(rng, distance), **_exposure(rng, spec.mosaic_domains))
    else:
        spec = dataclasses.replace(spec, **_exposure(rng, spec.mosaic_domains), **_ice(rng))
    return spec


def _exposure(rng, mosaic_domains: int) -> Dict[str, object]:
    """An image's exposure (both recipes; the resolution recipe's from v6): a still, or
    (:data:`ROTATION_FRACTION` of them) a rotation frame whose wedge (:data:`ROTATION_WEDGE_DEG`)
    about a spindle has a domain at least every :data:`ROTATION_STEP_DEG` (at most :data:`MAX_DOMAINS`)."""
    if rng.random() >= ROTATION_FRACTION:
        return {}
    wedge = _log_uniform(rng, *ROTATION_WEDGE_DEG)
    return dict(rotation_wedge_deg=wedge, spindle=str(rng.choice(SPINDLES)),
                mosaic_domains=int(min(MAX_DOMAINS, max(mosaic_domains, math.ceil(wedge / ROTATION_STEP_DEG)))))


def _ice(rng) -> Dict[str, object]:
    """A resolution image's crystalline ice: on :data:`ICE_FRACTION` of them, a thickness
    (:data:`ICE_THICKNESS_UM`, log-uniform: rings from barely visible to far above the background), and
    on :data:`SPOTTY_ICE_FRACTION` of those spotty rings (spots per ring, their width and the smooth
    share drawn from :data:`ICE_SPOTS_PER_RING`, :data:`ICE_SPOT_WIDTH_DEG`, :data:`ICE_SMOOTH_FRACTION`)."""
    if rng.random() >= ICE_FRACTION:
        return {}
    ice = dict(ice_um=_log_uniform(rng, *ICE_THICKNESS_UM))
    if rng.random() < SPOTTY_ICE_FRACTION:
        ice.update(ice_spots_per_ring=_log_uniform(rng, *ICE_SPOTS_PER_RING),
                   ice_spot_width_deg=_log_uniform(rng, *ICE_SPOT_WIDTH_DEG),
                   ice_smooth_fraction=float(rng.uniform(*ICE_SMOOTH_FRACTION)))
    return ice


def _header_errors(rng, distance_mm: float) -> Dict[str, object]:
    """The header's geometry less the true one (:data:`HEADER_BEAM_ERROR_PX`,
    :data:`HEADER_DISTANCE_ERROR_FRACTION`; normal, cut at ±3σ)."""
    beam = np.clip(rng.normal(0.0, HEADER_BEAM_ERROR_PX, 2), -3 * HEADER_BEAM_ERROR_PX, 3 * HEADER_BEAM_ERROR_PX)
    distance = float(np.clip(rng.normal(0.0, HEADER_DISTANCE_ERROR_FRACTION), -3 * HEADER_DISTANCE_ERROR_FRACTION,
                             3 * HEADER_DISTANCE_ERROR_FRACTION)) * distance_mm
    return dict(header_beam_error_px=(float(beam[0]), float(beam[1])), header_distance_error_mm=distance)


def _read_noise(recipe: str, model, rng) -> float:
    """Gaussian read noise (photons RMS): an integrating detector's catalogue value; on the
    resolution recipe's photon-counting geometries, none on half the images and a log-uniform
    draw on the others, so that the model does not take a noise floor for the end of diffraction."""
    if not model.counting:
        return float(model.read_noise)
    if recipe == "resolution" and rng.random() < READ_NOISE_FRACTION:
        return _log_uniform(rng, *READ_NOISE_RANGE_PHOTONS)
    return 0.0


def quadrant_extents_px(model, beam_centre_px, quadrant: int) -> Tuple[float, float]:
    """(slow, fast) extents (raw pixels) of the part of a quadrant that lies on the detector."""
    from ..conditioning import QUADRANT_DIRECTIONS, QUADRANT_SIZE

    extents = []
    for beam, size, step in zip((beam_centre_px[1], beam_centre_px[0]), model.shape, QUADRANT_DIRECTIONS[quadrant]):
        on_detector = size - beam if step > 0 else beam
        extents.append(min(QUADRANT_SIZE * model.downsample, max(on_detector, 0.0)))
    return extents[0], extents[1]


def quadrant_reach_mm(model, beam_centre_px, quadrant: int) -> float:
    """Distance (mm) from the beam to the far corner of the part of a quadrant that lies on the
    detector: a resolution ring of smaller radius crosses that part (wholly within its edges, or
    partly, beyond one of them)."""
    return math.hypot(*quadrant_extents_px(model, beam_centre_px, quadrant)) * model.pixel_size


def ring_radius_mm(resolution_A: float, wavelength_A: float, distance_mm: float) -> float:
    """Radius (mm) of the resolution ring d on a flat detector ⊥ beam (inf beyond 2θ = 90°)."""
    sin_theta = wavelength_A / (2.0 * resolution_A)
    if sin_theta >= 1.0 or 2.0 * math.asin(sin_theta) >= math.pi / 2:
        return math.inf
    return distance_mm * math.tan(2.0 * math.asin(sin_theta))
