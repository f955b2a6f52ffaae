"""Indexing, without a known cell or with one: lattices in a still's reciprocal-space spots, one after another.

The spots' scattering vectors r (Å⁻¹, :func:`xrais.spotfinder.scattering_vectors`) of one crystal
lie on (or, in a still, within their excitation error of) the nodes of its reciprocal lattice, so
for every real-space lattice vector t the products r·t are whole numbers. The method is the 1-D FFT
basis search of DPS (Steller, Bolotovsky & Rossmann 1997; Sauter, Grosse-Kunstleve & Adams 2004:
LABELIT, DIALS ``fft1d``), written here in numpy and numba:

1. **Directions.** ~2π/δ² unit vectors u evenly over a hemisphere (δ the angular step, rad). The
   projections r·u of a lattice's spots bunch at multiples of 1/|t| when u is along a real-space
   lattice vector t, so the histogram of r·u has a Fourier peak at frequency |t| (Å). The search
   looks at the spots within the reach that step resolves for the longest edge (:func:`search_reach`).
2. **Candidates.** The strongest peaks between :attr:`IndexingSettings.min_cell` and the maximum
   cell (estimated from the spots' nearest-neighbour distances unless given), taken as local maxima
   over the directions, give candidate vectors t = |t|·u, each then refined on a finer local grid by
   the exact lattice sum S(t) = |Σᵢ exp(2πi rᵢ·t)| / n (1 when every spot has a whole r·t), on the
   searched spots and then on all (coarse to fine).
3. **Lattice.** Of the triplets of candidates that make a cell (not flat), the one that indexes most
   spots (|r·t − round(r·t)| ≤ :attr:`IndexingSettings.tolerance` for its three vectors), with the
   smallest volume among near-ties, is refined by least squares (r ≈ h·B, the cell A = B⁻¹ᵀ) and the
   spots are indexed again, a few times.
   When that lattice indexes less than :attr:`IndexingSettings.wider_search_below` of the spots,
   the search is repeated with twice the estimated maximum cell (the estimate is a lower bound).
4. **More lattices**, as DIALS ``max_lattices``: the spots the lattice leaves unindexed are searched
   again. First for the first lattice's cell in another orientation (a split crystal, or several
   crystals of one protein: :func:`orient_known_cell`, three parameters), kept when it indexes at
   least :data:`MIN_KNOWN_CELL_INDEXED` of them and clearly more than the best orientation of a
   known cell in random points does (:data:`CHANCE_INDEXED_KNOWN_CELL`); else, in at least
   :attr:`IndexingSettings.min_other_cell_spots` leftovers, for any cell (the basis search
   again, nine parameters), kept when it indexes at least
   :attr:`IndexingSettings.min_lattice_spots` of them and clearly more than a lattice found by
   chance would (:func:`chance_indexed`). The known cell finds a weak second crystal from a dozen
   spots, where a free search needs several dozen to beat chance.

**A known cell** (:attr:`IndexingSettings.known_cell`, as DIALS ``known_symmetry`` and cctbx.xfel's
target cell) replaces steps 1–3 for the first lattice: the cell's primitive vectors
(:mod:`xrais.lattice.cell`) oriented by :func:`orient_known_cell` or, where that finds none, by
matching spot pairs with node pairs (:func:`orient_known_cell_from_pairs`), each judged against
its own chance share; the geometry refinement and further lattices follow as without it.

**Significance.** The best cell of any points indexes a share of them, and a large share of few
points: of 20 random spots on the Ewald cap, up to ~80 %; of 50, ~45 %; of 200, ~23 %
(:data:`CHANCE_INDEXED`, from ``scripts/chance_lattices.py``). A frame's leftover spots are few, so
without this test the leftovers of a single crystal grow "further lattices" out of noise. Every
lattice, the first included, must index more than :func:`chance_indexed` of the spots it was
searched in.

Where it fails: a still of fewer than ~20 spots gives no lattice (too few for a basis search);
two lattices turned by less than about ``tolerance / (|t|·|r|)`` rad (≈ 0.3° for a 60 Å cell at
2 Å) index as one; a second lattice of fewer than ~10 recorded spots is not told from noise; and
when the first lattice's cell is wrong, a further lattice is searched for with any cell only.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from typing import List, Optional, Tuple

import numba
import numpy as np

from .cell import check_known_symmetry, known_cell_vectors
from .refinement import GeometryRefinement, GeometryRefinementSettings, refine_geometry


@dataclasses.dataclass(frozen=True)
class IndexingSettings:
    """Basis search and indexing settings.

    max_cell: longest real-space cell edge searched (Å; None: 1.5× the longest the spots'
    nearest-neighbour distances suggest, within 30 Å…``max_cell_limit``); max_cell_limit (Å): the
    estimate's cap (spots of several lattices lie closer than one lattice's nodes, and the
    search's cost grows as max_cell³); min_cell (Å): shortest (10 Å: macromolecular
cells; shorter vectors index a still's low-resolution spots by chance); angular_step (rad):
    direction sampling of the search (0.029 rad as Steller 1997, finer when the data reach far);
    n_candidates: candidate vectors kept for the triplet search; max_search_spots: the
    strongest spots the basis search uses (all are indexed; a few hundred spots sample a 200 Å
    cell's periodicity too sparsely to find it); tolerance: largest |r·t − round|
    of an indexed spot; min_spots: fewest spots a search is tried on; min_lattice_spots: fewest a
    lattice must index; min_other_cell_spots: fewest leftover spots (off the ice rings) searched
    for a further lattice of any cell (below ~30 a chance lattice indexes 63–100 % of them, so a
    real one could hardly be told from it: :data:`CHANCE_INDEXED`); min_known_cell_spots: fewest
    leftover spots searched for a further lattice
    of the first lattice's cell (:func:`orient_known_cell`); min_fraction: least fraction of all
    spots the first lattice must index (a best cell of random points, no lattice, indexes 15–22 %
    of them at tolerance 0.2); max_lattices: most lattices looked for; min_separation_deg: a further lattice
    of the same cell turned by less than this from one already found is the same lattice (its
    spots are that lattice's, a little off their nodes: reflections are ≈ 0.1–0.3° wide);
    chance_margin: a lattice must index more than this times the spots a chance lattice indexes
    (:func:`chance_indexed`); refine_cycles: least-squares cycles;
    wider_search_below: when the estimated max_cell's best lattice indexes less than this fraction of
    the spots, the search is repeated with a longer max_cell (:func:`_first_lattice`);
    known_cell: the crystal's cell when known (a, b, c Å, α, β, γ °, the conventional setting of
    ``known_space_group``, whose lattice letter gives the centring: DIALS ``known_symmetry``): the
    first lattice is then that cell oriented (:func:`_first_of_known_cell`), three parameters where a
    free search fits nine, so it is found in fewer and looser spots, and a frame it does not index
    gives no lattice (further lattices are searched as without it).
    """

    max_cell: Optional[float] = None
    max_cell_limit: float = 250.0
    min_cell: float = 10.0
    angular_step: float = 0.029
    n_candidates: int = 15
    max_search_spots: int = 1000
    tolerance: float = 0.2
    min_spots: int = 20
    min_lattice_spots: int = 15
    min_other_cell_spots: int = 30
    min_known_cell_spots: int = 8
    min_fraction: float = 0.3
    max_lattices: int = 3
    min_separation_deg: float = 0.3
    chance_margin: float = 1.1
    refine_cycles: int = 4
    wider_search_below: float = 0.9
    known_cell: Optional[Tuple[float, float, float, float, float, float]] = None
    known_space_group: Optional[str] = None

    def known_cell_vectors(self) -> Optional[np.ndarray]:
        """The known cell's primitive vectors (rows, Å; :func:`xrais.lattice.cell.known_cell_vectors`),
        or None without one (ValueError for a space group without its cell)."""
        if self.known_cell is None:
            check_known_symmetry(None, self.known_space_group)
            return None
        return known_cell_vectors(self.known_cell, self.known_space_group)  # checks the cell as it goes


@dataclasses.dataclass
class IndexedLattice:
    """One lattice found: real-space cell vectors (rows a, b, c, Å, in the spots' lab frame), which
    spots it indexes (boolean over the input spots), their Miller indices and the RMS of
    r·t − round over its indexed spots."""

    real_vectors: np.ndarray
    indexed: np.ndarray
    miller: np.ndarray
    rms_fractional: float

    @property
    def n_indexed(self) -> int:
        return int(self.indexed.sum())

    @property
    def cell(self) -> Tuple[float, float, float, float, float, float]:
        """Reduced cell (a, b, c in Å, α, β, γ in degrees) of the lattice."""
        return cell_parameters(reduced_basis(self.real_vectors))


@dataclasses.dataclass
class IndexingResult:
    """Lattices found in one image's spots (strongest first), the spots' scattering vectors
    ((n, 3) Å⁻¹, in the order given; the lattices' masks and Miller indices refer to them) and the
    longest cell edge searched (Å); nearest: each spot's distance to its nearest other spot (Å⁻¹,
    :func:`nearest_neighbour_distances`; None for fewer than 2 spots); geometry_refinement: the
    frame's geometry refined with the first lattice (:mod:`xrais.lattice.refinement`), when the
    detector was given (``vectors`` are then the refined geometry's); kept: which of the spots
    given the result holds (boolean, their order; spots in ice-ring bands that no lattice indexes
    are taken for ice and left out), None when all."""

    lattices: List[IndexedLattice]
    vectors: np.ndarray
    max_cell: Optional[float]
    nearest: Optional[np.ndarray] = None
    geometry_refinement: Optional[GeometryRefinement] = None
    kept: Optional[np.ndarray] = None

    @property
    def n_spots(self) -> int:
        return len(self.vectors)

    @property
    def n_lattices(self) -> int:
        return len(self.lattices)

    @property
    def fraction_indexed(self) -> float:
        """Fraction of the spots the first lattice indexes (0 when none was found)."""
        return self.lattices[0].n_indexed / self.n_spots if self.lattices and self.n_spots else 0.0

    @property
    def fraction_indexed_all(self) -> float:
        """Fraction of the spots some lattice indexes."""
        if not self.lattices or not self.n_spots:
            return 0.0
        return float(np.any([lattice.indexed for lattice in self.lattices], axis=0).mean())

    @property
    def fraction_other_lattices(self) -> float:
        """Fraction of the spots that lattices beyond the first index (the multi-lattice score)."""
        return self.fraction_indexed_all - self.fraction_indexed

    def misorientation_deg(self) -> List[float]:
        """Rotation angle (degrees) from the first lattice to each further one
        (:func:`lattice_misorientation_deg`; NaN where their cells differ)."""
        if len(self.lattices) < 2:
            return []
        first = reduced_basis(self.lattices[0].real_vectors)
        return [lattice_misorientation_deg(first, reduced_basis(other.real_vectors)) for other in self.lattices[1:]]


def hemisphere_directions(step: float) -> np.ndarray:
    """(m, 3) unit vectors spread evenly over the hemisphere z ≥ 0, about ``step`` rad apart
    (a Fibonacci lattice of m = 2π/step² points)."""
    m = max(int(round(2.0 * math.pi / step ** 2)), 8)
    i = np.arange(m)
    z = (i + 0.5) / m
    phi = i * math.pi * (3.0 - math.sqrt(5.0))
    radial = np.sqrt(1.0 - z * z)
    return np.stack([radial * np.cos(phi), radial * np.sin(phi), z], axis=1)


def estimate_max_cell(vectors: np.ndarray, limit: float = 250.0, nearest: Optional[np.ndarray] = None) -> float:
    """Longest cell edge the spots allow (Å): 1.5 over the 5th percentile of the nearest-neighbour
    distances between the spots' scattering vectors, within 30 Å…limit (nearest nodes of a lattice
    lie 1/a apart along its longest edge a, or closer along a diagonal: the margin covers both).
    A still samples its lattice on the Ewald sphere's cap only, and where the cap cuts the lattice
    obliquely its nearest spots can lie further apart than 1.5/a: an edge beyond the estimate is
    then not found (give :attr:`IndexingSettings.max_cell`). nearest: the distances, when known
    (:func:`nearest_neighbour_distances`)."""
    vectors = np.asarray(vectors, float)
    if len(vectors) < 2:
        return 30.0
    nearest = nearest_neighbour_distances(vectors) if nearest is None else nearest
    return float(np.clip(1.5 / np.percentile(nearest, 5), 30.0, limit))


def nearest_neighbour_distances(vectors: np.ndarray) -> np.ndarray:
    """Distance (Å⁻¹) from each of ≥ 2 scattering vectors to its nearest other one."""
    return np.sqrt(_nearest_squared(np.ascontiguousarray(vectors, np.float64))[0])


def nearest_neighbours(vectors: np.ndarray) -> np.ndarray:
    """Index of each of ≥ 2 scattering vectors' nearest other one."""
    return _nearest_squared(np.ascontiguousarray(vectors, np.float64))[1]


def _nearest_squared(vectors: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(squared distance to the nearest other vector, its index) of each of ≥ 2 (n, 3) vectors:
    exact, by a sweep along the axis of widest spread (:func:`_nearest_sweep`)."""
    axis = int(np.argmax(np.ptp(vectors, axis=0)))
    order = np.argsort(vectors[:, axis], kind="stable")
    squared, which = _nearest_sweep(np.ascontiguousarray(vectors[order]), axis, order)
    nearest = np.empty(len(vectors))
    neighbour = np.empty(len(vectors), np.int64)
    nearest[order], neighbour[order] = squared, order[which]
    return nearest, neighbour


@numba.njit(cache=True, nogil=True)
def _nearest_sweep(vectors, axis, original):
    """Nearest neighbours (squared distance, position) of vectors sorted by their coordinate
    ``axis``: from each, the others are visited outwards in that order until that coordinate alone
    lies further apart than the nearest found (a still's spots spread over a cap: each visits the few in
    a thin slab, not all n — 16.7 million pairs for 5,786 spots). Of neighbours equally near, the
    one first in the ``original`` order (each position's index there)."""
    n = len(vectors)
    nearest = np.full(n, np.inf)
    which = np.zeros(n, np.int64)
    for i in range(n):
        for step in (1, -1):
            j = i + step
            while 0 <= j < n:
                along = vectors[j, axis] - vectors[i, axis]
                if along * along > nearest[i]:
                    break
                squared = (vectors[i, 0] - vectors[j, 0]) ** 2 + (vectors[i, 1] - vectors[j, 1]) ** 2 \
                    + (vectors[i, 2] - vectors[j, 2]) ** 2
                if squared < nearest[i] or (squared == nearest[i] and original[j] < original[which[i]]):
                    nearest[i] = squared
                    which[i] = j
                j += step
    return nearest, which


def lattice_sum(vectors: np.ndarray, trials: np.ndarray) -> np.ndarray:
    """S(t) = |Σᵢ exp(2πi rᵢ·t)| / n for each trial real-space vector t (rows of ``trials``, Å):
    1 when every spot's r·t is a whole number."""
    return _lattice_sum(np.ascontiguousarray(vectors, np.float64), np.ascontiguousarray(trials, np.float64))


@numba.njit(cache=True, nogil=True)
def _lattice_sum(vectors, trials):
    sums = np.empty(len(trials))
    for i in range(len(trials)):
        real = 0.0
        imaginary = 0.0
        for j in range(len(vectors)):
            phase = 2.0 * math.pi * (trials[i, 0] * vectors[j, 0] + trials[i, 1] * vectors[j, 1]
                                     + trials[i, 2] * vectors[j, 2])
            real += math.cos(phase)
            imaginary += math.sin(phase)
        sums[i] = math.hypot(real, imaginary) / len(vectors)
    return sums


@numba.njit(cache=True, nogil=True)
def _projection_histograms(directions, vectors, offset, width, n_bins):
    """(m, n_bins) histograms of the projections r·u + offset (bins of ``width`` Å⁻¹ from 0) of the
    scattering vectors on each direction u. Per direction, every spot's bin first (a loop the
    compiler vectorises), then the counts: 3–5× faster than binning spot by spot."""
    histograms = np.zeros((len(directions), n_bins))  # float64: numpy's FFT is faster in double
    x = np.ascontiguousarray(vectors[:, 0])
    y = np.ascontiguousarray(vectors[:, 1])
    z = np.ascontiguousarray(vectors[:, 2])
    bins = np.empty(len(vectors), np.int64)
    for i in range(len(directions)):
        u0 = directions[i, 0]
        u1 = directions[i, 1]
        u2 = directions[i, 2]
        for j in range(len(bins)):
            bins[j] = int((u0 * x[j] + u1 * y[j] + u2 * z[j] + offset) / width)
        row = histograms[i]
        for j in range(len(bins)):
            row[bins[j]] += 1.0
    return histograms


def fft_length(n: int) -> int:
    """Smallest 2^a·3^b·5^c ≥ n: a length the FFT factors quickly (a length with a large prime
    factor is several times slower)."""
    best = 1 << max(int(n - 1).bit_length(), 0)
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            candidate = power35
            while candidate < n:
                candidate *= 2
            best = min(best, candidate)
            power35 *= 3
        power5 *= 5
    return best


def candidate_vectors(vectors: np.ndarray, max_cell: float, settings: IndexingSettings,
                      resolved_cell: Optional[float] = None) -> np.ndarray:
    """(k, 3) candidate real-space lattice vectors (Å), best first: the 1-D FFT peaks over the
    hemisphere's directions (local maxima over the directions), distinct in direction, each refined
    by the lattice sum. resolved_cell (Å; default ``max_cell``): the longest vector the direction
    grid must resolve; longer ones, to ``max_cell``, are found where the spots within the reach
    that grid resolves show them (a known cell's orientation needs its two shortest edges only).

    Coarse to fine: a direction grid of step δ blurs the peak of a vector t when the spots reach
    beyond ~2/(δ·|t|), so the search uses the spots within :func:`search_reach` (Steller's step for
    the longest edge, or the :data:`MIN_SEARCH_SPOTS` nearest the origin), and each peak is refined
    on those spots first, then on all of them, whose sharper lattice sum fixes it finely. The FFT
    work, directions × bins, falls as the search reach cubed: 10× on a PILATUS frame to 1.2 Å whose
    spots suggest a 250 Å edge."""
    vectors = np.asarray(vectors, float)
    radii = np.linalg.norm(vectors, axis=1)
    reach = float(radii.max())
    resolved_cell = max_cell if resolved_cell is None else min(resolved_cell, max_cell)
    near_reach = search_reach(radii, resolved_cell, settings)
    searched = vectors[radii <= near_reach]
    # Steller's step, finer when even the searched spots reach far enough that it would blur the
    # longest vector to resolve
    step = min(settings.angular_step, 2.0 / (near_reach * resolved_cell))
    directions = hemisphere_directions(step)
    bin_width = 1.0 / (4.0 * max_cell)  # Å⁻¹: ≥ 4 bins per period of the longest cell edge
    n_bins = fft_length(int(math.ceil(2.0 * near_reach / bin_width)) + 1)  # zeros beyond the reach: padding
    lengths = np.arange(n_bins // 2 + 1) / (n_bins * bin_width)  # Å: frequency k ↔ |t| = k/(n·width)
    # the frequencies of lengths min_cell…max_cell, one run of k: only they are kept
    allowed = np.flatnonzero((lengths >= settings.min_cell) & (lengths <= max_cell))
    first_k, last_k = (int(allowed[0]), int(allowed[-1]) + 1) if len(allowed) else (0, 1)
    spectra = np.zeros((len(directions), last_k - first_k), np.float32)
    for start in range(0, len(directions), 1024):
        histograms = _projection_histograms(directions[start:start + 1024], searched, near_reach, bin_width, n_bins)
        if len(allowed):
            spectra[start:start + len(histograms)] = np.abs(np.fft.rfft(histograms, axis=1)[:, first_k:last_k])
    # A lattice vector's multiples 2t, 3t… make every r·t whole too and peak as high: take the
    # fundamental, the shortest length whose peak is within 80 % of the direction's highest.
    strength = spectra.max(axis=1)
    best_k = first_k + np.argmax(spectra >= 0.8 * strength[:, None], axis=1)
    near = math.cos(3.0 * step)  # peaks closer in direction than 3 steps are one
    chosen: List[np.ndarray] = []
    visited = np.empty((2 * MAX_PEAKS_PER_CANDIDATE * settings.n_candidates, 3))  # unit vectors of every peak refined
    n_visited = 0
    for index in _local_maxima(directions, strength, 2.0 * step)[:MAX_PEAKS_PER_CANDIDATE * settings.n_candidates]:
        trial = directions[index] * lengths[best_k[index]]
        if np.any(np.abs(visited[:n_visited] @ directions[index]) > near):
            continue  # a neighbour of a peak already refined
        refined = _refine_vector(searched, trial, step, 0.02)
        if len(searched) < len(vectors):  # then on all the spots, within their sharper peak's width
            width = min(1.0 / (reach * np.linalg.norm(refined)), step)  # rad, and relative length
            refined = _refine_vector(vectors, refined, width, min(width, 0.02), levels=4)
        refined = _fundamental(vectors, refined, settings.min_cell)
        visited[n_visited:n_visited + 2] = directions[index], refined / np.linalg.norm(refined)
        n_visited += 2
        if _orders_spanned(vectors, refined) >= MIN_ORDERS and \
                not any(_same_line(refined, other, 3.0 * step) for other in chosen):
            chosen.append(refined)
        if len(chosen) >= settings.n_candidates:
            break
    return np.array(chosen)


#: Fewest spots the basis search uses when the spots within Steller's reach are fewer
#: (:func:`search_reach`): the nearest to the origin, enough for a lattice's periodicity to show.
MIN_SEARCH_SPOTS = 100


def search_reach(radii: np.ndarray, max_cell: float, settings: IndexingSettings) -> float:
    """|r| (Å⁻¹) within which the basis search looks at the spots (:func:`candidate_vectors`): where
    Steller's angular step resolves a ``max_cell`` vector, 2/(step·max_cell), or further when fewer
    than :data:`MIN_SEARCH_SPOTS` lie within it (those nearest the origin), never beyond the spots.
    radii: the spots' |r| (Å⁻¹)."""
    radii = np.sort(np.asarray(radii, float))
    steller = 2.0 / (settings.angular_step * max_cell)
    enough = radii[min(MIN_SEARCH_SPOTS, len(radii)) - 1]
    return float(min(max(steller, enough), radii[-1]))


def _local_maxima(directions: np.ndarray, strength: np.ndarray, radius: float) -> np.ndarray:
    """Indices of the directions whose strength no stronger direction within ``radius`` rad (u and
    −u alike) exceeds, strongest first, among the :data:`LOCAL_MAXIMA_POOL` strongest. A lattice
    vector's peak is a hill several degrees wide when the spots' r·t stay nearly whole as the
    direction turns (a vector two split lattices nearly share, a short one over a thin cap): its
    hundreds of directions would otherwise fill the candidates' places before the next vector's."""
    order = np.argsort(strength)[::-1][:LOCAL_MAXIMA_POOL]
    return order[_unshadowed(np.ascontiguousarray(directions[order]), math.cos(radius))]


@numba.njit(cache=True, nogil=True)
def _unshadowed(directions, cos_radius):
    """Mask of the directions (sorted strongest first) with no earlier one within the radius."""
    keep = np.ones(len(directions), np.bool_)
    for i in range(len(directions)):
        for j in range(i):
            if abs(directions[i, 0] * directions[j, 0] + directions[i, 1] * directions[j, 1]
                   + directions[i, 2] * directions[j, 2]) > cos_radius:
                keep[i] = False
                break
    return keep


#: Fewest whole numbers the spots' r·t must span for t to be a candidate: along a direction in which
#: a still's spots hardly spread (the beam's, over the Ewald sphere's thin cap), every short t puts
#: all r·t near one whole number and "indexes" every spot, meaning nothing.
MIN_ORDERS = 4.0
#: Peaks (local maxima over the directions, :func:`_local_maxima`) looked at per candidate wanted: the
#: rest bounds the work on spots with no lattice. Before peaks were local maxima, the strongest
#: directions were taken in turn, and the hundreds of directions of one broad peak (a vector two
#: split lattices nearly share) filled the candidates' places: 36 % of xrais's multi-lattice quadrants
#: of ≥ 300 spots indexed no lattice (0 % with local maxima; ``scripts/multilattice_indexing_study.py
#: --true-lattices``).
MAX_PEAKS_PER_CANDIDATE = 20
#: Strongest directions among which :func:`_local_maxima` looks for peaks.
LOCAL_MAXIMA_POOL = 3000


def _orders_spanned(vectors: np.ndarray, vector: np.ndarray) -> float:
    """Range of the spots' r·t (whole numbers spanned) for a real-space vector t (Å)."""
    projections = vectors @ vector
    return float(projections.max() - projections.min())


def _same_line(first: np.ndarray, second: np.ndarray, max_angle: float = 0.05) -> bool:
    """True when two vectors lie along one line (within max_angle rad), whatever their lengths."""
    cosine = abs(first @ second) / (np.linalg.norm(first) * np.linalg.norm(second))
    return cosine > math.cos(max_angle)


def _refine_vector(vectors: np.ndarray, trial: np.ndarray, angle: float, scale: float, levels: int = 5) -> np.ndarray:
    """The real-space vector near ``trial`` with the largest lattice sum: a 5×5×5 grid of steps
    across it (two directions, ± ``angle`` rad of its length) and along it (± ``scale`` of its
    length), shrunk threefold at each level (:func:`grid_lattice_sums`)."""
    return _refine_on_grids(np.ascontiguousarray(vectors, np.float64), np.asarray(trial, np.float64),
                            float(angle), float(scale), int(levels), GRID_OFFSETS)


@numba.njit(cache=True, nogil=True)
def _refine_on_grids(vectors, centre, angle, scale, levels, offsets):
    centre = centre.copy()
    steps = np.empty((3, 3))
    for _ in range(levels):
        length = math.sqrt(centre[0] ** 2 + centre[1] ** 2 + centre[2] ** 2)
        direction = centre / length
        helper = np.zeros(3)
        helper[np.argmin(np.abs(direction))] = 1.0
        across = np.cross(direction, helper)
        across /= math.sqrt(across[0] ** 2 + across[1] ** 2 + across[2] ** 2)
        steps[0] = length * angle * across
        steps[1] = length * angle * np.cross(direction, across)
        steps[2] = length * scale * direction
        sums = _grid_lattice_sums(vectors, centre, steps, offsets)
        best = np.argmax(sums)
        m = len(offsets)
        i, j, k = best // (m * m), (best // m) % m, best % m
        centre = centre + offsets[i] * steps[0] + offsets[j] * steps[1] + offsets[k] * steps[2]
        angle, scale = angle / 3.0, scale / 3.0
    return centre


#: Grid offsets of :func:`_refine_vector`, in steps.
GRID_OFFSETS = np.linspace(-1.0, 1.0, 5)


def grid_lattice_sums(vectors: np.ndarray, centre: np.ndarray, steps: np.ndarray,
                      offsets: np.ndarray = GRID_OFFSETS) -> np.ndarray:
    """Lattice sums S(t) (:func:`lattice_sum`) over the grid t = centre + oᵢ·s₀ + oⱼ·s₁ + oₖ·s₂
    (o ∈ ``offsets``, evenly spaced; sₘ the rows of ``steps``, Å): array [i, j, k]. The phase
    2π r·t is a sum of one term per axis, and along an axis the offsets' phase factors are powers of
    one step's, so each spot costs seven sines and cosines (the centre's, and per axis the first
    offset's and the step's) and the grid's products, where the sums one by one cost one per grid
    point."""
    offsets = np.asarray(offsets, np.float64).reshape(-1)
    spacing = offsets[1] - offsets[0] if len(offsets) > 1 else 0.0
    if not len(offsets) or not np.allclose(offsets, offsets[0] + spacing * np.arange(len(offsets)), rtol=1e-12,
                                           atol=0.0):
        raise ValueError(f"grid offsets must be one or more evenly spaced numbers, got {offsets}")
    return _grid_lattice_sums(np.ascontiguousarray(vectors, np.float64), np.asarray(centre, np.float64),
                              np.ascontiguousarray(steps, np.float64), offsets)


@numba.njit(cache=True, nogil=True)
def _grid_lattice_sums(vectors, centre, steps, offsets):
    m = len(offsets)
    mm = m * m
    # Σ of each grid point's phase factor, by spot; rows k, columns i·m + j, so that the m² products
    # of a spot's (i, j) factors with each k factor are one loop the compiler vectorises. Complex
    # products written out as numba's complex type computes them (ac − bd, ad + bc).
    real = np.zeros((m, mm))
    imaginary = np.zeros((m, mm))
    factor_real = np.empty((3, m))
    factor_imag = np.empty((3, m))
    pair_real = np.empty(mm)
    pair_imag = np.empty(mm)
    spacing = offsets[1] - offsets[0] if m > 1 else 0.0
    for n in range(len(vectors)):
        r = vectors[n]
        base = 2.0 * math.pi * (r[0] * centre[0] + r[1] * centre[1] + r[2] * centre[2])
        for axis in range(3):
            phase = 2.0 * math.pi * (r[0] * steps[axis, 0] + r[1] * steps[axis, 1] + r[2] * steps[axis, 2])
            a = math.cos(offsets[0] * phase)
            b = math.sin(offsets[0] * phase)
            c = math.cos(spacing * phase)
            d = math.sin(spacing * phase)
            for o in range(m):
                factor_real[axis, o] = a
                factor_imag[axis, o] = b
                a, b = a * c - b * d, a * d + b * c
        first_real = math.cos(base)
        first_imag = math.sin(base)
        for i in range(m):
            a = first_real * factor_real[0, i] - first_imag * factor_imag[0, i]
            b = first_real * factor_imag[0, i] + first_imag * factor_real[0, i]
            for j in range(m):
                pair_real[i * m + j] = a * factor_real[1, j] - b * factor_imag[1, j]
                pair_imag[i * m + j] = a * factor_imag[1, j] + b * factor_real[1, j]
        for k in range(m):
            c = factor_real[2, k]
            d = factor_imag[2, k]
            row_real = real[k]
            row_imag = imaginary[k]
            for ij in range(mm):
                row_real[ij] += pair_real[ij] * c - pair_imag[ij] * d
                row_imag[ij] += pair_real[ij] * d + pair_imag[ij] * c
    sums = np.empty((m, m, m))
    for i in range(m):
        for j in range(m):
            for k in range(m):
                sums[i, j, k] = math.sqrt(real[k, i * m + j] ** 2 + imaginary[k, i * m + j] ** 2) / len(vectors)
    return sums


def _fundamental(vectors: np.ndarray, vector: np.ndarray, min_cell: float) -> np.ndarray:
    """The shortest t/m (m = 1…4, |t/m| ≥ min_cell) whose lattice sum is within 80 % of t's."""
    divisors = np.arange(4, 0, -1)
    trials = vector[None, :] / divisors[:, None]
    sums = lattice_sum(vectors, trials)
    usable = (np.linalg.norm(trials, axis=1) >= min_cell) & (sums >= 0.8 * sums[-1])
    usable[-1] = True  # t itself
    return trials[np.argmax(usable)]


def _fractional_error(vectors: np.ndarray, real_vectors: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(Miller indices rounded, largest |r·t − round| over the three vectors) of each spot."""
    fractional = vectors @ real_vectors.T
    miller = np.rint(fractional)
    return miller, np.abs(fractional - miller).max(axis=1)


def best_triplet(vectors: np.ndarray, candidates: np.ndarray, tolerance: float) -> Optional[np.ndarray]:
    """The cell (3×3 rows, Å) from three candidates that indexes most spots, the smallest volume
    among those within 5 % of the most; None when no three candidates make a cell. Each candidate
    is tested on every spot once (|r·t − round| ≤ tolerance), and a triplet indexes the spots all
    three pass."""
    triplets = np.array(list(itertools.combinations(range(len(candidates)), 3)), int).reshape(-1, 3)
    cells = candidates[triplets]  # (m, 3, 3)
    volumes = np.abs(np.linalg.det(cells)) if len(cells) else np.zeros(0)
    flat = volumes < 0.2 * np.linalg.norm(cells, axis=2).prod(axis=1)  # angles near 0° or 180°: no cell
    fractional = vectors @ candidates.T
    passes = np.abs(fractional - np.rint(fractional)) <= tolerance  # (n spots, candidates)
    counts = (passes[:, triplets[:, 0]] & passes[:, triplets[:, 1]] & passes[:, triplets[:, 2]]).sum(axis=0)
    usable = np.flatnonzero(~flat)
    if not len(usable):
        return None
    most = counts[usable].max()
    near_best = usable[counts[usable] >= 0.95 * most]
    return cells[near_best[np.argmin(volumes[near_best])]]


def refine_lattice(vectors: np.ndarray, cell: np.ndarray, settings: IndexingSettings) -> IndexedLattice:
    """Least-squares refinement of a cell against the spots it indexes (r ≈ h·B; A = (B⁻¹)ᵀ), then
    the spots indexed again, for ``settings.refine_cycles`` cycles."""
    for _ in range(settings.refine_cycles):
        miller, error = _fractional_error(vectors, cell)
        indexed = error <= settings.tolerance
        if indexed.sum() < 4 or np.linalg.matrix_rank(miller[indexed]) < 3:
            break
        reciprocal, *_ = np.linalg.lstsq(miller[indexed], vectors[indexed], rcond=None)
        cell = np.linalg.inv(reciprocal).T
    return _indexed_by(vectors, cell, settings)


def _indexed_by(vectors: np.ndarray, cell: np.ndarray, settings: IndexingSettings) -> IndexedLattice:
    """The lattice of ``cell`` (rows, Å) with the spots it indexes within ``settings.tolerance``,
    their Miller indices and the RMS of r·t − round over them."""
    miller, error = _fractional_error(vectors, cell)
    indexed = error <= settings.tolerance
    rms = float(np.sqrt(np.mean(np.square(error[indexed])))) if indexed.any() else math.nan
    return IndexedLattice(cell, indexed, miller.astype(int), rms)


def kabsch_rotation(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The rotation R (3 × 3) that best takes the rows of ``source`` onto those of ``target``
    (least squares, R·sᵢ ≈ tᵢ; Kabsch)."""
    u, _, vt = np.linalg.svd(source.T @ target)
    return vt.T @ np.diag([1.0, 1.0, np.sign(np.linalg.det(vt.T @ u.T))]) @ u.T


def index_lattice(vectors: np.ndarray, settings: IndexingSettings = IndexingSettings(),
                  max_cell: Optional[float] = None) -> Optional[IndexedLattice]:
    """The best lattice in a set of scattering vectors (n, 3; Å⁻¹), or None when there are too few
    spots or no lattice indexes ``settings.min_lattice_spots`` of them."""
    vectors = np.asarray(vectors, float)
    if len(vectors) < settings.min_spots:
        return None
    max_cell = max_cell or settings.max_cell or estimate_max_cell(vectors, settings.max_cell_limit)
    candidates = candidate_vectors(vectors[:settings.max_search_spots], max_cell, settings)
    cell = best_triplet(vectors, candidates, settings.tolerance) if len(candidates) >= 3 else None
    if cell is None:
        return None
    lattice = _primitive(vectors, refine_lattice(vectors, cell, settings), settings)
    too_short = min(lattice.cell[:3]) < settings.min_cell
    return lattice if lattice.n_indexed >= settings.min_lattice_spots and not too_short else None


def _primitive(vectors: np.ndarray, lattice: IndexedLattice, settings: IndexingSettings) -> IndexedLattice:
    """The lattice with its cell halved while every one of its indexed spots allows it: a cell of
    twice the volume indexes the same spots (its reciprocal lattice has every node of the true one,
    and more), and a still of a few dozen spots cannot tell them by their number. When
    Σ nᵢhᵢ is even for the indexed spots' indices h (n ∈ {0, 1}³; all but 5 % of them, or one:
    a spot at the edge of the tolerance), (Σ nᵢtᵢ)/2 is a lattice vector too: it replaces one of
    the tᵢ it sums, and the halved cell is kept when it indexes as many spots but those."""
    for _ in range(3):
        miller = lattice.miller[lattice.indexed]
        if len(miller) < settings.min_lattice_spots:
            return lattice
        for parity in itertools.product((0, 1), repeat=3):
            odd = int(np.count_nonzero((miller @ np.array(parity)) % 2))
            if any(parity) and odd <= max(1, 0.05 * len(miller)):
                cell = lattice.real_vectors.copy()
                cell[int(np.flatnonzero(parity)[0])] = np.array(parity) @ lattice.real_vectors / 2.0
                halved = refine_lattice(vectors, reduced_basis(cell), settings)
                if halved.n_indexed >= lattice.n_indexed - odd:
                    lattice = halved
                    break
        else:
            return lattice
    return lattice


#: Candidate vectors match a known lattice vector within this relative length and their pair's
#: angle the known pair's within this angle (:func:`orient_known_cell`): the basis search's vectors
#: from a few dozen spots are that uncertain.
KNOWN_CELL_LENGTH_TOLERANCE = 0.05
KNOWN_CELL_ANGLE_TOLERANCE_DEG = 4.0


def short_lattice_vectors(real_vectors: np.ndarray) -> np.ndarray:
    """The 13 lattice vectors n·A, n ∈ {−1, 0, 1}³ (one of each ± pair), of the cell's rows A (Å):
    the vectors a basis search finds as candidates (edges, face and body diagonals)."""
    steps = np.array([n for n in itertools.product((-1, 0, 1), repeat=3) if n > (0, 0, 0)])
    return steps @ np.asarray(real_vectors, float)


def _triads(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """(m, 3, 3) orthonormal columns for each pair of rows: along ``first``, in the plane of the two
    towards ``second``, and along first × second (the frame a pair of vectors fixes)."""
    e1 = first / np.linalg.norm(first, axis=1, keepdims=True)
    e3 = np.cross(first, second)
    e3 /= np.linalg.norm(e3, axis=1, keepdims=True)
    return np.stack([e1, np.cross(e3, e1), e3], axis=2)


def orient_known_cell(vectors: np.ndarray, real_vectors: np.ndarray,
                      settings: IndexingSettings = IndexingSettings()) -> Optional[IndexedLattice]:
    """The orientation of a known cell (rows, Å) that indexes most of the scattering vectors
    (n, 3; Å⁻¹), or None: a further lattice of the crystal form already found (a split crystal,
    or several crystals of one protein). Two candidate vectors of the basis search
    (:func:`candidate_vectors`) matched, by their lengths and the angle between them (within
    :data:`KNOWN_CELL_LENGTH_TOLERANCE` and :data:`KNOWN_CELL_ANGLE_TOLERANCE_DEG`), with two of the
    cell's short lattice vectors (:func:`short_lattice_vectors`) fix a rotation; the rotation that
    indexes most spots is refined, the cell kept (:func:`_refine_orientation`). Three parameters
    where a free search fits nine: far fewer spots make it significant (:data:`CHANCE_INDEXED_KNOWN_CELL`)."""
    vectors = np.asarray(vectors, float)
    if len(vectors) < settings.min_known_cell_spots:
        return None
    known = short_lattice_vectors(real_vectors)
    # the cell's edges are the candidates to find, whatever the leftovers' spacing suggests; two
    # fix the orientation, so the direction grid need resolve only the two shortest (a search
    # resolving a 150 Å edge in 23 spots to 1.3 Å takes 23,000 directions, one resolving 60 Å, 7,500)
    edges = np.sort(np.linalg.norm(reduced_basis(real_vectors), axis=1))
    max_cell, resolved_cell = (min((1.0 + KNOWN_CELL_LENGTH_TOLERANCE) * edge, settings.max_cell_limit)
                               for edge in (edges[2], edges[1]))
    candidates = candidate_vectors(vectors[:settings.max_search_spots], max_cell, settings, resolved_cell)
    if len(candidates) < 2:
        return None
    known_lengths = np.linalg.norm(known, axis=1)
    known_units = known / known_lengths[:, None]
    candidate_lengths = np.linalg.norm(candidates, axis=1)
    matches = np.abs(candidate_lengths[:, None] / known_lengths[None, :] - 1.0) <= KNOWN_CELL_LENGTH_TOLERANCE
    angle_tolerance = math.radians(KNOWN_CELL_ANGLE_TOLERANCE_DEG)
    pairs = []  # (candidate i, candidate j, sign of j, known k, known m): u_k → t_i, u_m → sign·t_j
    for i, j in itertools.combinations(range(len(candidates)), 2):
        cosine = candidates[i] @ candidates[j] / (candidate_lengths[i] * candidate_lengths[j])
        if abs(cosine) > 0.99:
            continue
        for k in np.flatnonzero(matches[i]):
            for m in np.flatnonzero(matches[j]):
                known_cosine = known_units[k] @ known_units[m]
                if k == m or abs(known_cosine) > 0.99:
                    continue
                for sign in (1.0, -1.0):  # t and −t are one candidate: the angle decides the pairing
                    if abs(math.acos(np.clip(sign * cosine, -1, 1)) - math.acos(np.clip(known_cosine, -1, 1))) \
                            > angle_tolerance:
                        continue
                    pairs.append((i, j, sign, k, m))
    if not pairs:
        return None
    i, j, sign, k, m = (np.array(column) for column in zip(*pairs))
    # u_k → ±t_i and u_m → ±sign·t_j both: they differ by a half-turn about u_k × u_m
    onto = np.concatenate([_triads(flip * candidates[i], flip * sign[:, None] * candidates[j]) for flip in (1.0, -1.0)])
    rotations = onto @ np.tile(np.transpose(_triads(known[k], known[m]), (0, 2, 1)), (2, 1, 1))
    cells = np.asarray(real_vectors, float)[None] @ np.transpose(rotations, (0, 2, 1))  # rows a' = R a
    fractional = np.einsum("nd,hkd->hnk", vectors, cells)
    counts = (np.abs(fractional - np.rint(fractional)).max(axis=2) <= settings.tolerance).sum(axis=1)
    lattice = _refine_orientation(vectors, cells[int(np.argmax(counts))], settings)
    # then the cell too, as each lattice's own (a second crystal's spots seen through a slightly
    # wrong geometry, or strain): kept when it indexes more and stays the known cell's shape
    free = refine_lattice(vectors, lattice.real_vectors, settings)
    if free.n_indexed > lattice.n_indexed and _same_shape(free.real_vectors, lattice.real_vectors):
        lattice = free
    return lattice if lattice.n_indexed >= 3 else None


#: The pair search (:func:`orient_known_cell_from_pairs`): its anchor spots are the
#: ``PAIR_ANCHORS`` of smallest |r| among the ``PAIR_ANCHOR_POOL`` strongest (few nodes lie at low
#: resolution, so few node pairs match); it counts the indexed spots among the
#: ``PAIR_COUNTED_SPOTS`` strongest; a node matches a spot within ``PAIR_RADIAL_TOLERANCE`` of its
#: |r| (relative: a header's distance off by 1–2 % scales every |r| so) and a node pair a spot pair
#: within ``PAIR_ANGLE_TOLERANCE_DEG`` of its angle (mosaic spread, beam centre error).
PAIR_ANCHORS = 8
PAIR_ANCHOR_POOL = 24
#: Anchors whose |r| shell (± PAIR_RADIAL_TOLERANCE) holds more nodes than about this, 8π·ε·|r|³·V
#: for a cell of volume V, are not used: the work grows as the product of two shells (a thermolysin
#: cell's shell holds ~5,600 nodes at 4.8 Å, 14 times more at 2 Å; anchors beyond 4.7 Å are left out).
PAIR_MAX_SHELL_NODES = 6000
PAIR_COUNTED_SPOTS = 100
PAIR_RADIAL_TOLERANCE = 0.025
PAIR_ANGLE_TOLERANCE_DEG = 0.8


def orient_known_cell_from_pairs(vectors: np.ndarray, real_vectors: np.ndarray,
                                 settings: IndexingSettings = IndexingSettings()) -> Optional[IndexedLattice]:
    """The orientation of a known cell (rows, Å) that indexes most of the scattering vectors (n, 3;
    Å⁻¹, strongest first), found without a basis search, or None: every pair of anchor spots
    (:data:`PAIR_ANCHORS`, low resolution) is matched with every pair of the cell's reciprocal
    nodes of the same lengths and angle (:data:`PAIR_RADIAL_TOLERANCE`,
    :data:`PAIR_ANGLE_TOLERANCE_DEG`); each match fixes a rotation, which is scored by the spots it
    indexes (:data:`PAIR_COUNTED_SPOTS` strongest); the best is refined, the cell's shape kept and
    its size fitted (:func:`_refine_orientation`). Where a basis search needs the lattice's periodicity to show in
    the spots, this needs two of its reflections among the anchors: it finds a crystal in a few
    dozen spots of which half are strays (the CS-PAD thermolysin still 601), at the cost of a higher
    chance share (:data:`CHANCE_INDEXED_KNOWN_CELL_PAIRS`)."""
    vectors = np.asarray(vectors, float)
    if len(vectors) < settings.min_known_cell_spots:
        return None
    cell = np.asarray(real_vectors, float)
    pool = vectors[:PAIR_ANCHOR_POOL]
    anchors = pool[np.argsort(np.linalg.norm(pool, axis=1), kind="stable")[:PAIR_ANCHORS]]
    anchor_lengths = np.linalg.norm(anchors, axis=1)
    # no anchor beyond the reach where its shell holds PAIR_MAX_SHELL_NODES: 4π r²·2εr·V nodes (V: cell volume)
    volume = abs(np.linalg.det(cell))
    shell_reach = (PAIR_MAX_SHELL_NODES / (8.0 * math.pi * PAIR_RADIAL_TOLERANCE * volume)) ** (1.0 / 3.0)
    anchors, anchor_lengths = anchors[anchor_lengths <= shell_reach], anchor_lengths[anchor_lengths <= shell_reach]
    if len(anchors) < 2:
        return None
    reach = anchor_lengths.max() * (1.0 + PAIR_RADIAL_TOLERANCE)
    steps = np.ceil(reach * np.linalg.norm(cell, axis=1)).astype(int)  # |h_k| = |r·a_k| ≤ |r|·|a_k|
    miller = np.stack(np.meshgrid(*[np.arange(-m, m + 1) for m in steps], indexing="ij"), -1).reshape(-1, 3)
    nodes = miller @ np.linalg.inv(cell).T
    lengths = np.linalg.norm(nodes, axis=1)
    keep = (lengths > 0) & (lengths <= reach)
    order = np.argsort(lengths[keep], kind="stable")
    nodes, lengths = nodes[keep][order], lengths[keep][order]
    low = np.searchsorted(lengths, anchor_lengths * (1.0 - PAIR_RADIAL_TOLERANCE), side="left")
    high = np.searchsorted(lengths, anchor_lengths * (1.0 + PAIR_RADIAL_TOLERANCE), side="right")
    # R and R·g (g a rotation of the lattice onto itself) turn the cell alike: the first node of a
    # pair need only be one of each set of nodes the lattice's rotations map onto each other
    first_node = _first_of_symmetry_copies(nodes, cell)
    count, rotation = _best_pair_rotation(anchors, low, high, nodes / lengths[:, None], first_node,
                                          vectors[:PAIR_COUNTED_SPOTS], cell, settings.tolerance,
                                          math.radians(PAIR_ANGLE_TOLERANCE_DEG))
    if count < 3:
        return None
    # the cell's shape kept, its size fitted: in few spots with strays among them, a free cell (nine
    # parameters) takes the strays in and turns away from the crystal (1.3° in a test of 16
    # reflections and 14 strays), while a header's distance scales the cell on the frame
    lattice = _refine_orientation(vectors, cell @ rotation.T, settings, scaled=True)
    return lattice if lattice.n_indexed >= 3 else None


def lattice_rotations(real_vectors: np.ndarray, tolerance: float = 1e-6) -> np.ndarray:
    """The rotations (k, 3, 3; Cartesian, proper) that map the lattice of the cell's rows (Å) onto
    itself — its holohedry's rotations, the identity first: of the integer matrices M (entries
    −1…1, on the reduced basis) with det 1, each as Q with M·A = A·Qᵀ (every row turned by Q),
    those whose Q is a rotation within ``tolerance`` (|Q·Qᵀ − I|): a symmetry of the cell as given
    (a = b typed alike is exact), never one of a cell only nearly symmetric — the pair search that
    relies on them would lose orientations (:func:`orient_known_cell_from_pairs`)."""
    return _lattice_rotations(tuple(np.asarray(real_vectors, float).ravel()), tolerance)


@functools.lru_cache(maxsize=8)
def _lattice_rotations(cell: tuple, tolerance: float) -> np.ndarray:
    """:func:`lattice_rotations` of a cell given as its nine numbers (cached: a known cell is the
    same on every frame, and the 19,683 matrices take ~10 ms)."""
    basis = reduced_basis(np.array(cell).reshape(3, 3))
    entries = np.array(list(itertools.product((-1, 0, 1), repeat=9))).reshape(-1, 3, 3)
    entries = entries[np.rint(np.linalg.det(entries)).astype(int) == 1]
    rotations = np.transpose(np.linalg.inv(basis) @ entries @ basis, (0, 2, 1))
    orthogonal = np.abs(rotations @ np.transpose(rotations, (0, 2, 1)) - np.eye(3)).max(axis=(1, 2)) <= tolerance
    rotations = rotations[orthogonal]
    identity = np.argmin(np.abs(rotations - np.eye(3)).max(axis=(1, 2)))
    return np.concatenate([rotations[identity:identity + 1], np.delete(rotations, identity, axis=0)])


def _first_of_symmetry_copies(nodes: np.ndarray, real_vectors: np.ndarray) -> np.ndarray:
    """Boolean mask of the nodes (rows, Å⁻¹) that come first, by their Miller indices on the cell's
    rows, among their images under the lattice's rotations (:func:`lattice_rotations`): one node
    of each set the rotations map onto each other, where ``nodes`` is a ball (which they map onto
    itself)."""
    cell = np.asarray(real_vectors, float)
    rotations = lattice_rotations(cell)
    own = np.rint(nodes @ cell.T).astype(np.int64)
    first = np.ones(len(nodes), bool)
    for rotation in rotations[1:]:
        image = np.rint(nodes @ rotation.T @ cell.T).astype(np.int64)
        # lexicographic: the image comes before the node when its first differing index is larger
        differ = image != own
        position = np.argmax(differ, axis=1)
        larger = np.take_along_axis(image - own, position[:, None], axis=1)[:, 0] > 0
        first &= ~(differ.any(axis=1) & larger)
    return first


@numba.njit(cache=True, nogil=True)
def _fill_triad(first, second, frame):
    """The orthonormal columns of the frame a pair of vectors fixes (as :func:`_triads`, for one
    pair, in numba for the pair search's kernel), ``first`` a unit vector, written into ``frame``
    (3 × 3) in scalars: no arrays made."""
    e3x = first[1] * second[2] - first[2] * second[1]
    e3y = first[2] * second[0] - first[0] * second[2]
    e3z = first[0] * second[1] - first[1] * second[0]
    norm = math.sqrt(e3x * e3x + e3y * e3y + e3z * e3z)
    e3x, e3y, e3z = e3x / norm, e3y / norm, e3z / norm
    frame[0, 0], frame[1, 0], frame[2, 0] = first[0], first[1], first[2]
    frame[0, 1] = e3y * first[2] - e3z * first[1]
    frame[1, 1] = e3z * first[0] - e3x * first[2]
    frame[2, 1] = e3x * first[1] - e3y * first[0]
    frame[0, 2], frame[1, 2], frame[2, 2] = e3x, e3y, e3z


@numba.njit(cache=True, nogil=True)
def _best_pair_rotation(anchors, low, high, units, first_node, spots, cell, tolerance, angle_tolerance):
    """(spots indexed, rotation) of the best rotation R taking node pairs onto anchor-spot pairs
    (the nodes' unit vectors ``units``, sorted by length; low[i]:high[i] match anchor i by length;
    the pair's first node only where ``first_node``); a spot counts as indexed when the cell's rows
    turned by R, a' = R a, give whole r·a' within ``tolerance``. Stops early once a rotation indexes
    nine in ten of the spots."""
    best, best_rotation = 0, np.eye(3)
    n_spots = spots.shape[0]
    enough = int(0.9 * n_spots)
    spot_frame, node_frame, turned = np.zeros((3, 3)), np.zeros((3, 3)), np.zeros((3, 3))
    for i in range(anchors.shape[0]):
        for j in range(i + 1, anchors.shape[0]):
            ri, rj = anchors[i], anchors[j]
            cosine = np.sum(ri * rj) / np.sqrt(np.sum(ri * ri) * np.sum(rj * rj))
            if abs(cosine) > 0.995:
                continue
            angle = math.acos(min(1.0, max(-1.0, cosine)))
            upper, lower = math.cos(max(0.0, angle - angle_tolerance)), math.cos(min(math.pi, angle + angle_tolerance))
            _fill_triad(ri / math.sqrt(np.sum(ri * ri)), rj, spot_frame)
            local = spots @ spot_frame  # the spots in the pair's frame: w = Fᵀ r
            for a in range(low[i], high[i]):
                if not first_node[a]:
                    continue
                ua = units[a]
                for b in range(low[j], high[j]):
                    ub = units[b]
                    node_cosine = ua[0] * ub[0] + ua[1] * ub[1] + ua[2] * ub[2]
                    if node_cosine > upper or node_cosine < lower or abs(node_cosine) > 0.995:
                        continue
                    # R = F_spots · F_nodesᵀ; r·(R a) = (F_nodesᵀ a)·(F_spotsᵀ r): the cell in the node
                    # frame, written out (no arrays made per candidate: this loop runs ~10⁵ times)
                    _fill_triad(ua, ub, node_frame)
                    for k in range(3):
                        for m in range(3):
                            turned[k, m] = cell[k, 0] * node_frame[0, m] + cell[k, 1] * node_frame[1, m] + \
                                cell[k, 2] * node_frame[2, m]
                    count = 0
                    for s in range(n_spots):
                        if count + n_spots - s <= best:
                            break
                        worst = 0.0
                        for k in range(3):
                            h = turned[k, 0] * local[s, 0] + turned[k, 1] * local[s, 1] + turned[k, 2] * local[s, 2]
                            worst = max(worst, abs(h - round(h)))
                        if worst <= tolerance:
                            count += 1
                    if count > best:
                        best = count
                        best_rotation = spot_frame @ node_frame.T
                        if best >= enough:
                            return best, best_rotation
    return best, best_rotation


def _same_shape(first: np.ndarray, second: np.ndarray) -> bool:
    """Whether two cells (rows, Å) have reduced edges within :data:`KNOWN_CELL_LENGTH_TOLERANCE`
    of each other and angles within :data:`KNOWN_CELL_ANGLE_TOLERANCE_DEG` (as |cos|: a reduced
    basis may take an angle or its supplement, 60° or 120°)."""
    one, other = (np.array(cell_parameters(reduced_basis(cell))) for cell in (first, second))
    cosines = [np.abs(np.cos(np.radians(cell[3:]))) for cell in (one, other)]
    return bool(np.all(np.abs(one[:3] / other[:3] - 1.0) <= KNOWN_CELL_LENGTH_TOLERANCE)
                and np.all(np.abs(cosines[0] - cosines[1]) <= math.sin(math.radians(KNOWN_CELL_ANGLE_TOLERANCE_DEG))))


def _refine_orientation(vectors: np.ndarray, cell: np.ndarray, settings: IndexingSettings,
                        scaled: bool = False) -> IndexedLattice:
    """The rotation of the cell (rows, Å; its shape kept) that best puts its nodes on the spots it
    indexes (Kabsch fit of the nodes h·B to the spots r), then the spots indexed again, for
    ``settings.refine_cycles`` cycles. scaled: the cell's size too (one factor, least squares): a
    given cell seen through a header's distance or wavelength off by a percent or two is that much
    larger or smaller on the frame, and its outer spots fall off their nodes unless it is scaled."""
    for _ in range(settings.refine_cycles + (2 if scaled else 0)):
        miller, error = _fractional_error(vectors, cell)
        indexed = error <= settings.tolerance
        if indexed.sum() < 3:
            break
        nodes = miller[indexed] @ np.linalg.inv(cell).T
        rotation = kabsch_rotation(nodes, vectors[indexed])
        cell = cell @ rotation.T
        if scaled:  # nodes longer by f: the cell shorter by f
            turned = nodes @ rotation.T
            cell = cell * (np.sum(turned * turned) / np.sum(turned * vectors[indexed]))
    return _indexed_by(vectors, cell, settings)


def index_lattices(vectors: np.ndarray, intensities: Optional[np.ndarray] = None,
                   settings: IndexingSettings = IndexingSettings(), detector: Optional[Tuple[float, float]] = None,
                   refinement: GeometryRefinementSettings = GeometryRefinementSettings(),
                   on_ice_ring: Optional[np.ndarray] = None) -> IndexingResult:
    """Lattices one after another (as DIALS ``max_lattices``): the best lattice of all spots, then of
    the spots left unindexed, while one indexes at least ``min_lattice_spots`` of those and more than
    ``chance_margin`` × :func:`chance_indexed` (the first: also ``min_fraction`` of all).
    vectors: (n, 3) scattering vectors (Å⁻¹); intensities: the spots' (the basis search uses the
    strongest ``max_search_spots``; without them, the first); detector: (distance mm, wavelength Å)
    of the geometry that mapped the spots: the beam centre, distance and first lattice are then
    refined together (:func:`xrais.lattice.refinement.refine_geometry`) before its spots are
    indexed again and further lattices are searched. on_ice_ring: the spots in ice-ring bands
    (:func:`xrais.spotfinder.on_ice_ring`): a crystal's reflections fall in the bands as anywhere
    (a quarter of a protein still's spots between 4 and 2 Å), so they are indexed with the rest
    (:func:`_first_of`); those the first lattice leaves are taken for ice, searched no further and
    left out of the result (``kept``)."""
    vectors = np.asarray(vectors, float).reshape(-1, 3)
    order = np.arange(len(vectors)) if intensities is None else np.argsort(-np.asarray(intensities), kind="stable")
    vectors = vectors[order]
    ice = np.zeros(len(vectors), bool) if on_ice_ring is None else np.asarray(on_ice_ring, bool).reshape(-1)[order]
    nearest = nearest_neighbour_distances(vectors) if len(vectors) >= 2 else None
    max_cell = settings.max_cell or (estimate_max_cell(vectors, settings.max_cell_limit, nearest)
                                     if len(vectors) >= settings.min_spots else None)
    known = settings.known_cell_vectors()
    lattices: List[IndexedLattice] = []
    refined = None
    left = np.ones(len(vectors), bool)
    while len(lattices) < settings.max_lattices and \
            left.sum() >= (settings.min_known_cell_spots if lattices else settings.min_spots):
        if lattices:
            found = _further_lattice(vectors[left], ice[left], lattices[0].real_vectors, settings, max_cell)
        elif known is not None:
            found = _first_of_known_cell(vectors, ice, known, settings)
        else:
            found, max_cell = _first_of(vectors, ice, settings, max_cell)
        if found is None:
            break
        if not lattices and detector is not None:
            refined = refine_geometry(vectors, found, *detector, refinement)
            again = refine_lattice(refined.vectors, refined.real_vectors, settings)
            if again.n_indexed >= found.n_indexed:
                vectors, found = refined.vectors, again
            else:  # the refined geometry explains fewer spots: the header's is kept
                refined = None
        indexed = np.zeros(len(vectors), bool)
        indexed[np.flatnonzero(left)[found.indexed]] = True
        miller = np.zeros((len(vectors), 3), int)
        miller[indexed] = found.miller[found.indexed]
        same = _same_lattice(lattices, found.real_vectors, settings.min_separation_deg)
        if same is None:
            lattices.append(IndexedLattice(found.real_vectors, indexed, miller, found.rms_fractional))
        else:
            lattices[same].indexed |= indexed
            lattices[same].miller[indexed] = miller[indexed]
        left &= ~indexed
    restore = np.argsort(order)  # back to the input's order of spots
    kept = (~ice | np.any([lattice.indexed for lattice in lattices], axis=0) if lattices else ~ice)[restore]
    # ice-band spots no lattice indexes are ice: left out
    lattices = [IndexedLattice(lattice.real_vectors, lattice.indexed[restore][kept], lattice.miller[restore][kept],
                               lattice.rms_fractional) for lattice in lattices]
    vectors = vectors[restore][kept]
    if refined is not None or not kept.all():  # the spots moved, or some left out
        nearest = nearest_neighbour_distances(vectors) if len(vectors) >= 2 else None
    elif nearest is not None:
        nearest = nearest[restore]
    return IndexingResult(lattices, vectors, max_cell, nearest, refined, None if kept.all() else kept)


def _all_then_off_ice(ice: np.ndarray) -> List[np.ndarray]:
    """The spots a search tries, in order (boolean masks): all of them, then, when some lie in
    ice-ring bands (``ice``), those off the bands."""
    return [np.ones(len(ice), bool)] + ([~ice] if ice.any() else [])


def _first_of(vectors: np.ndarray, ice: np.ndarray, settings: IndexingSettings,
              max_cell: Optional[float]) -> Tuple[Optional[IndexedLattice], Optional[float]]:
    """(the first lattice, indexing all the spots, or None; the longest cell edge searched): searched
    in all the spots, those in ice-ring bands included, and kept when it indexes more than
    ``min_fraction`` and ``chance_margin`` × :func:`chance_indexed` of the spots searched; when it
    does not and some spots lie in the bands, searched again in those off the bands (heavy ice:
    the rings' spots drown the lattice's)."""
    for subset in _all_then_off_ice(ice):
        n = int(subset.sum())
        if n < settings.min_spots:
            continue
        found, searched = _first_lattice(vectors[subset], settings, max_cell, ice[subset])
        if found is not None and found.n_indexed > first_lattice_least(n, settings):
            return (found if subset.all() else refine_lattice(vectors, found.real_vectors, settings)), searched
    return None, max_cell


def first_lattice_least(n_spots: int, settings: IndexingSettings, table: Optional[dict] = None) -> float:
    """The count a frame's first lattice, found in ``n_spots`` spots, must exceed: it indexes at
    least ``min_lattice_spots`` and ``min_fraction`` of them, and more than ``chance_margin`` × what
    the search finds in random points (:func:`chance_indexed` with ``table``: the free search's by
    default, a known cell's search's otherwise)."""
    return max(settings.min_lattice_spots - 1, settings.min_fraction * n_spots,
               settings.chance_margin * chance_indexed(n_spots, table))


def _first_of_known_cell(vectors: np.ndarray, ice: np.ndarray, known: np.ndarray,
                         settings: IndexingSettings) -> Optional[IndexedLattice]:
    """The first lattice as the known cell (rows, Å) oriented, indexing all the spots, or None:
    searched in all the spots, then off the ice-ring bands (:func:`_all_then_off_ice`), first by
    :func:`orient_known_cell` (from the basis search's vectors), then, where that finds none, by
    :func:`orient_known_cell_from_pairs` (from spot pairs: slower, surer in few and stray-ridden
    spots); kept when it indexes at least ``min_lattice_spots`` and ``min_fraction`` of the spots
    searched and more than ``chance_margin`` × what that search finds in random points
    (:data:`CHANCE_INDEXED_KNOWN_CELL`, :data:`CHANCE_INDEXED_KNOWN_CELL_PAIRS`)."""
    for search, chance in ((orient_known_cell, CHANCE_INDEXED_KNOWN_CELL),
                           (orient_known_cell_from_pairs, CHANCE_INDEXED_KNOWN_CELL_PAIRS)):
        for subset in _all_then_off_ice(ice):
            n = int(subset.sum())
            found = search(vectors[subset], known, settings) if n >= settings.min_spots else None
            if found is not None and found.n_indexed > first_lattice_least(n, settings, chance):
                return found if subset.all() else _refine_orientation(vectors, found.real_vectors, settings)
    return None


def _first_lattice(vectors: np.ndarray, settings: IndexingSettings, max_cell: float,
                   ice: Optional[np.ndarray] = None) -> Tuple[Optional[IndexedLattice], float]:
    """(the best lattice of all the spots, the longest cell edge searched). The nearest-neighbour
    estimate of the longest edge is a lower bound (a still's cap can miss the nodes along the
    longest reciprocal axis, and the estimate then falls short by up to 2×, so that the search finds
    no lattice or a wrong one): when the lattice found indexes less than
    :attr:`IndexingSettings.wider_search_below` of the spots (of those off the ice-ring bands, when
    ``ice`` flags some: ice spots are not the lattice's to index), the search is repeated to
    :data:`WIDER_SEARCH` × the estimate, and the wider result kept when it indexes more spots."""
    found = index_lattice(vectors, settings, max_cell)
    wider = min(WIDER_SEARCH * max_cell, settings.max_cell_limit)
    judged = np.ones(len(vectors), bool) if ice is None or ice.all() else ~ice
    if settings.max_cell is not None or wider <= max_cell or \
            (found is not None and found.indexed[judged].sum() >= settings.wider_search_below * judged.sum()):
        return found, max_cell
    again = index_lattice(vectors, settings, wider)
    if again is not None and (found is None or again.n_indexed > found.n_indexed + 0.02 * len(vectors)):
        return again, wider
    return found, max_cell


def _further_lattice(vectors: np.ndarray, ice: np.ndarray, first_cell: np.ndarray, settings: IndexingSettings,
                     max_cell: float) -> Optional[IndexedLattice]:
    """A further lattice in the spots the lattices found leave, or None: the first lattice's cell
    turned (:func:`orient_known_cell`) when it indexes more than ``chance_margin`` × a known cell's
    chance share (:data:`CHANCE_INDEXED_KNOWN_CELL`) and at least :data:`MIN_KNOWN_CELL_INDEXED`
    spots; else a lattice of any cell (:func:`index_lattice`) above ``chance_margin`` ×
    :func:`chance_indexed`, in the spots off the ice rings (those in the bands gather at a few
    distances from the origin, not at random: a free cell fits them more easily). The known cell is
    searched in all the spots left (a crystal's reflections fall in the bands as anywhere), then,
    when it is not found and some lie in the bands, in those off them: real ice spots fill the basis
    search's histograms with their own periodicity (a weak second crystal's 16 spots beside 28 ice
    spots gave no candidate of its cell); the lattice found there indexes the spots in the bands too.
    The mask of the lattice returned is over ``vectors``."""
    for subset in _all_then_off_ice(ice):
        n = int(subset.sum())
        same_cell = orient_known_cell(vectors[subset], first_cell, settings)
        if same_cell is not None and same_cell.n_indexed >= MIN_KNOWN_CELL_INDEXED and \
                same_cell.n_indexed > settings.chance_margin * chance_indexed(n, CHANCE_INDEXED_KNOWN_CELL):
            # found off the bands: the crystal's reflections in them are its own too
            return same_cell if subset.all() else _refine_orientation(vectors, same_cell.real_vectors, settings)
    off_ice = int((~ice).sum())
    other = index_lattice(vectors[~ice], settings, max_cell) if off_ice >= settings.min_other_cell_spots else None
    if other is None or other.n_indexed <= settings.chance_margin * chance_indexed(off_ice):
        return None
    return refine_lattice(vectors, other.real_vectors, settings)


#: Of n spots with no lattice in them (uniform on the Ewald cap), the share the basis search's best
#: lattice indexes: its 99th percentile over 48 draws, the largest over longest cell edges of 60,
#: 120 and 250 Å (they differ by a few %), at the default tolerance: ``python
#: scripts/chance_lattices.py --draws 48`` (n: share).
CHANCE_INDEXED = {15: 1.00, 20: 0.85, 30: 0.63, 50: 0.50, 80: 0.38, 120: 0.31, 200: 0.23}


def chance_indexed(n_spots: int, table: Optional[dict] = None) -> float:
    """Spots out of ``n_spots`` that a lattice found by chance indexes (``table``: n → share,
    :data:`CHANCE_INDEXED` by default; interpolated in log n; below its smallest n, all; above its
    largest, the share there)."""
    table = CHANCE_INDEXED if table is None else table
    counts = np.array(sorted(table), float)
    if n_spots < counts[0]:
        return float(n_spots)
    share = np.interp(math.log(n_spots), np.log(counts), [table[int(n)] for n in counts])
    return float(share * n_spots)


#: Of n spots with no lattice in them, the share the best orientation of a known cell indexes
#: (:func:`orient_known_cell`): its 99th percentile over 48 draws, the largest over cells of
#: 38 × 44 × 52, 58.5 × 58.5 × 151 and 80 × 100 × 240 Å, made non-increasing in n: ``python
#: scripts/chance_lattices.py --draws 48 --known-cell`` (n: share). A third to a half of
#: :data:`CHANCE_INDEXED`: three parameters fitted, not nine.
CHANCE_INDEXED_KNOWN_CELL = {8: 0.30, 10: 0.30, 15: 0.30, 20: 0.30, 30: 0.24, 50: 0.19, 80: 0.15, 120: 0.15,
                             200: 0.12}
#: The same for the pair search (:func:`orient_known_cell_from_pairs`), which tries every match of
#: two low-resolution spots with two nodes and so fits random points better (1.4 to 2.9 times
#: :data:`CHANCE_INDEXED_KNOWN_CELL`): the largest over the same three cells, ``python
#: scripts/chance_lattices.py --draws 48 --known-cell --pairs`` (n: share).
CHANCE_INDEXED_KNOWN_CELL_PAIRS = {8: 0.88, 10: 0.80, 15: 0.60, 20: 0.53, 30: 0.42, 50: 0.31, 80: 0.26, 120: 0.23,
                                   200: 0.17}
#: Fewest spots a further lattice of a known cell must index (two fix its orientation; random
#: points reach 6 of 20 in a few draws of a hundred).
MIN_KNOWN_CELL_INDEXED = 8

#: The wider search's longest cell edge, over the nearest-neighbour estimate (:func:`_first_lattice`).
WIDER_SEARCH = 2.0


def _same_lattice(lattices: List[IndexedLattice], real_vectors: np.ndarray, min_separation_deg: float) -> Optional[int]:
    """Index of the lattice found already that ``real_vectors`` is within min_separation_deg of."""
    reduced = reduced_basis(real_vectors)
    for number, lattice in enumerate(lattices):
        angle = lattice_misorientation_deg(reduced_basis(lattice.real_vectors), reduced)
        if angle < min_separation_deg:  # NaN (another cell) compares False
            return number
    return None


def index_frame(pixels: np.ndarray, mask: Optional[np.ndarray], geometry, spot_settings=None,
                settings: IndexingSettings = IndexingSettings()) -> IndexingResult:
    """Lattices of one frame: its spots (dispersion threshold, :func:`xrais.spotfinder.find_spots`),
    mapped to reciprocal space and indexed (:func:`index_spots`)."""
    from ..spotfinder import SpotFinderSettings, find_spots

    spots = find_spots(pixels, mask, geometry, spot_settings or SpotFinderSettings())
    return index_spots(spots, geometry, settings)


def index_spots(spots, geometry, settings: IndexingSettings = IndexingSettings()) -> IndexingResult:
    """Lattices of a frame's spots (a :class:`xrais.spotfinder.SpotList`), mapped to reciprocal space
    with ``geometry`` (:func:`indexing_input`) and indexed, the beam centre refined with the first
    lattice; the result holds the spots of ``result.kept`` (all but the ice-band spots no lattice
    indexes), in order. The beam centre is refined on a detector facing the beam only (the
    refinement's model: :mod:`xrais.lattice.refinement`)."""
    vectors, intensities, on_ice_ring = indexing_input(spots, geometry)
    detector = (geometry.distance, geometry.wavelength) if geometry.faces_beam else None
    return index_lattices(vectors, intensities, settings=settings, detector=detector, on_ice_ring=on_ice_ring)


def indexing_input(spots, geometry) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scattering vectors (n, 3) Å⁻¹, intensities, in an ice-ring band) of a
    :class:`xrais.spotfinder.SpotList`'s spots: what :func:`index_lattices` indexes."""
    from ..spotfinder import scattering_vectors

    return scattering_vectors(spots, geometry), spots.intensity, np.asarray(spots.on_ice_ring, bool)


def reduced_basis(cell: np.ndarray) -> np.ndarray:
    """A reduced basis of the lattice spanned by the rows of ``cell`` (Å): pairwise
    Lagrange–Gauss reduction repeated until no vector shortens (Buerger-reduced edges for the
    lattices met here), right-handed."""
    basis = np.array(cell, float)
    for _ in range(100):
        changed = False
        for i, j in itertools.permutations(range(3), 2):
            factor = np.rint(basis[i] @ basis[j] / (basis[j] @ basis[j]))
            if factor != 0:
                shorter = basis[i] - factor * basis[j]
                if shorter @ shorter < basis[i] @ basis[i] - 1e-9:
                    basis[i] = shorter
                    changed = True
        if not changed:
            break
    # Pairwise reduction can stop at a basis whose third vector shortens only by the sum of both
    # others (a hexagonal cell as a, b, a + c): take the successive minima among the ±1
    # combinations, each keeping a basis (in three dimensions they always form one).
    steps = np.array([n for n in itertools.product((-1, 0, 1), repeat=3) if any(n)])
    steps = steps[np.argsort(np.linalg.norm(steps @ basis, axis=1), kind="stable")]
    chosen = [steps[0]]
    for step in steps[1:]:
        trial = np.array(chosen + [step])
        if len(chosen) == 1 and np.linalg.norm(np.cross(trial[0], trial[1])) > 0:
            chosen.append(step)
        elif len(chosen) == 2 and round(abs(np.linalg.det(trial))) == 1:
            chosen.append(step)
            break
    basis = np.array(chosen) @ basis
    if np.linalg.det(basis) < 0:
        basis = -basis
    return basis


def cell_parameters(cell: np.ndarray) -> Tuple[float, float, float, float, float, float]:
    """(a, b, c in Å, α, β, γ in degrees) of the rows of ``cell``."""
    a, b, c = cell
    lengths = [float(np.linalg.norm(v)) for v in (a, b, c)]

    def angle(u, v):
        return float(np.degrees(np.arccos(np.clip(u @ v / (np.linalg.norm(u) * np.linalg.norm(v)), -1.0, 1.0))))

    return (lengths[0], lengths[1], lengths[2], angle(b, c), angle(a, c), angle(a, b))


def lattice_misorientation_deg(first: np.ndarray, second: np.ndarray) -> float:
    """Rotation angle (degrees) between two lattices of one crystal form (rows: real-space basis
    vectors, Å): each of ``first``'s vectors is matched with the nearest of ``second``'s lattice
    vectors (integer combinations −2…2), and the rotation taking the matched triple onto
    ``first``'s is fitted (Kabsch). NaN when the matches do not form a basis of ``second``'s
    lattice or differ in length by more than 10 % (different cells)."""
    combinations = np.array(list(itertools.product(range(-2, 3), repeat=3)))
    lattice_vectors = combinations @ second
    nearest = np.argmin(np.linalg.norm(first[:, None, :] - lattice_vectors[None, :, :], axis=2), axis=1)
    matched = lattice_vectors[nearest]
    if round(abs(np.linalg.det(combinations[nearest]))) != 1:
        return math.nan
    if np.any(np.abs(np.linalg.norm(matched, axis=1) / np.linalg.norm(first, axis=1) - 1.0) > 0.1):
        return math.nan
    rotation = kabsch_rotation(matched, first)
    # θ from its cosine, (trace − 1)/2, and its sine, the antisymmetric part's length: accurate at
    # every angle (the arccosine alone loses half the digits near 0°, ~10⁻⁶° for a lattice with itself)
    sine = 0.5 * math.hypot(rotation[2, 1] - rotation[1, 2], rotation[0, 2] - rotation[2, 0],
                            rotation[1, 0] - rotation[0, 1])
    return math.degrees(math.atan2(sine, (np.trace(rotation) - 1.0) / 2.0))
