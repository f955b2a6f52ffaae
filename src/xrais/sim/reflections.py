"""Reflection-driven Bragg rendering: the pixel kernel's physics, visiting reflections, not pixels.

The pixel kernel (:mod:`xrais.sim.kernels`) asks, for every pixel and every mosaic domain, which
node is nearest. Most of those questions have the answer "none within reach". This kernel turns
the loops round: for every source point and every mosaic domain it visits only the reciprocal-
lattice nodes whose lattice transform reaches the Ewald sphere, projects each onto the detector,
and evaluates the very same per-pixel terms (:func:`~xrais.sim.kernels.make_lattice_functions`) on
the pixels of its footprint only. The sum over sources, domains and sub-pixels of each pixel is
then multiplied by the solid angle and polarization of its centre and by the fluence·r_e², as
the pixel kernel does.

What is the same: every term the pixel kernel's fast path keeps (the nearest node of the domain,
fractional offsets within the per-axis ``cuts``) whose S lies within the lattice transform's
*reach* of the node is added here with the same value; only the order of the additions differs
(float rounding). The reach is the largest |S − g| (Å⁻¹) at which F_latt² is still ≥
threshold·F_latt(0)² (the longest semi-axis of that ellipsoid for "gauss_hkl", the radius of that
sphere for "gauss" and "tophat"); the fast path's per-axis cuts bound a box around the ellipsoid,
whose corners beyond the reach hold terms below the threshold, which this kernel does not visit.
Shapes without a finite reach ("square", "round": side lobes everywhere) have no footprint;
:func:`~xrais.sim.bragg.render_bragg` renders them with the pixel kernel.

Node search, per (source, domain): for every (h, k) of the table (and within the window's largest
|S|), the l whose node lies within ``reach`` of the Ewald sphere |S + î/λ| = 1/λ solve two
quadratic inequalities in l (outside the sphere of radius 1/λ − reach, inside the one of radius
1/λ + reach). Footprint: the directions whose S lies within reach of the node form a cone about
the node's direction from the Ewald centre (half-angle by the law of cosines); on each sub-pixel
line of the detector the cone's cut is an interval (a quadratic inequality), found row by row
outwards from the node's point of closest approach while the rows still cross it (the cut is
convex). Nodes whose direction does not meet the detector plane are skipped: a detector facing
the sample (every pixel in front of it) is assumed, as for the pixel kernel's frames.
"""
from __future__ import annotations

import math

import numba
import numpy as np

from .kernels import (GAUSS_WIDTH, TOPHAT_RADIUS_SQUARED, debye_waller_exponent_cpu, polarization_factor_cpu,
                      solid_angle_cpu, centre_direction_cpu, squared_lattice_factor_cpu, table_value_cpu)

def lattice_reach(shape: str, real_vectors: np.ndarray, cells, threshold: float) -> float:
    """Largest |S − g| (Å⁻¹) at which the lattice transform of ``shape`` (cells per domain
    ``cells``, real-space rows ``real_vectors`` in Å) still has F_latt² ≥ threshold·F_latt(0)²;
    ``inf`` for shapes with side lobes everywhere ("square", "round")."""
    if shape in ("square", "round"):
        return math.inf
    cells = np.asarray(cells, dtype=float)
    total = float(np.prod(cells))
    if shape == "tophat":
        return math.sqrt(TOPHAT_RADIUS_SQUARED) / total * (1.0 + 1e-9)
    exponent_limit = 0.5 * GAUSS_WIDTH * math.log(1.0 / threshold)
    if shape == "gauss":
        return math.sqrt(exponent_limit) / total
    # gauss_hkl: Σ (N_i·δ_i)² ≤ limit with δ = A·(S − g): the ellipsoid's longest semi-axis
    reciprocal_columns = np.linalg.inv(np.asarray(real_vectors, dtype=float))
    return math.sqrt(exponent_limit) * float(np.linalg.norm(reciprocal_columns / cells[None, :], 2))


def largest_scattering_vector(frame: np.ndarray, sources: np.ndarray, window) -> float:
    """An upper bound (Å⁻¹) of |S| over the window's pixels and the source points: the largest
    over the window's corners when every corner is less than 90° from each source's direction
    (cos 2θ = d̂·î is quasi-concave on the plane where it is positive, so its smallest value over
    the window, the largest scattering angle, is at a corner), else 2/λ of the shortest wavelength."""
    pix0, fdet, sdet, pixel = frame[0:3], frame[3:6], frame[6:9], frame[12]
    largest = 0.0
    for s in (window.slow_start, window.slow_stop):
        for f in (window.fast_start, window.fast_stop):
            point = pix0 + f * pixel * fdet + s * pixel * sdet
            direction = point / np.linalg.norm(point)
            for source in sources:
                if float(np.dot(direction, source[:3])) <= 0.0:
                    return float(2.0 / np.min(sources[:, 3]))
                largest = max(largest, float(np.linalg.norm((direction - source[:3]) / source[3])))
    return largest


@numba.njit(cache=True, nogil=True)
def _node_interval(linear, quadratic, constant, radius):
    """Real l with quadratic·l² + 2·linear·l + constant ≤ radius² (an interval, or empty)."""
    discriminant = linear * linear - quadratic * (constant - radius * radius)
    if discriminant < 0.0:
        return 1.0, 0.0
    root = math.sqrt(discriminant)
    return (-linear - root) / quadratic, (-linear + root) / quadratic


@numba.njit(cache=True, nogil=True)
def _cone_row_span(qx, qy, qz, fx, fy, fz, dx, dy, dz, cos_sqr):
    """Where the row p = q + x·f̂ (x in mm) lies inside the cone of unit axis d̂ and cos² of its
    half-angle ``cos_sqr``: (x_low, x_high), empty when x_low > x_high, unbounded (±inf) when the
    cone does not close on the detector plane."""
    qd = qx * dx + qy * dy + qz * dz
    fd = fx * dx + fy * dy + fz * dz
    qf = qx * fx + qy * fy + qz * fz
    qq = qx * qx + qy * qy + qz * qz
    a = fd * fd - cos_sqr
    b = qd * fd - cos_sqr * qf
    c = qd * qd - cos_sqr * qq
    if a >= 0.0:
        return -math.inf, math.inf
    discriminant = b * b - a * c
    if discriminant < 0.0:
        return 1.0, 0.0
    root = math.sqrt(discriminant)
    return (-b + root) / a, (-b - root) / a


@numba.njit(cache=True, nogil=True)
def render_reflections_cpu(out, s_start, f_start, scale, frame, oversample, sources, polarization, domains,
                           reciprocals, weights, cuts, reach, reciprocal_metric, cells, shape, table, origin,
                           b_factor, index_limits):
    """out (window shape, float64, zeros on entry) ← scale · Σ weight·|F|²·F_latt² · Ω · P, the
    window's upper-left pixel being (s_start, f_start).

    domains / reciprocals: (m, 3, 3) real-space (Å) and reciprocal (Å⁻¹) row vectors of every
    mosaic domain; index_limits: (3, 2) smallest and largest h, k, l worth visiting.
    """
    rows, columns = out.shape
    pixel = frame[12]
    sub = pixel / oversample
    fx, fy, fz = frame[3], frame[4], frame[5]
    # within cuts below ½ a node is the nearest one; wider cuts also need the nearest-node test
    wide = cuts[0] >= 0.5 or cuts[1] >= 0.5 or cuts[2] >= 0.5
    for source in range(sources.shape[0]):
        ix, iy, iz, wavelength = sources[source, 0], sources[source, 1], sources[source, 2], sources[source, 3]
        radius = 1.0 / wavelength
        kx, ky, kz = ix * radius, iy * radius, iz * radius
        inner = radius - reach
        for domain in range(domains.shape[0]):
            a = domains[domain]
            r = reciprocals[domain]
            c_sqr = r[2, 0] * r[2, 0] + r[2, 1] * r[2, 1] + r[2, 2] * r[2, 2]
            weight = weights[domain]
            mf0 = (a[0, 0] * fx + a[0, 1] * fy + a[0, 2] * fz) * radius
            mf1 = (a[1, 0] * fx + a[1, 1] * fy + a[1, 2] * fz) * radius
            mf2 = (a[2, 0] * fx + a[2, 1] * fy + a[2, 2] * fz) * radius
            c0 = -(a[0, 0] * ix + a[0, 1] * iy + a[0, 2] * iz) * radius
            c1 = -(a[1, 0] * ix + a[1, 1] * iy + a[1, 2] * iz) * radius
            c2 = -(a[2, 0] * ix + a[2, 1] * iy + a[2, 2] * iz) * radius
            for h in range(index_limits[0, 0], index_limits[0, 1] + 1):
                for k in range(index_limits[1, 0], index_limits[1, 1] + 1):
                    ux = h * r[0, 0] + k * r[1, 0] + kx
                    uy = h * r[0, 1] + k * r[1, 1] + ky
                    uz = h * r[0, 2] + k * r[1, 2] + kz
                    linear = ux * r[2, 0] + uy * r[2, 1] + uz * r[2, 2]
                    constant = ux * ux + uy * uy + uz * uz
                    low, high = _node_interval(linear, c_sqr, constant, radius + reach)
                    if low > high:
                        continue
                    hole_low, hole_high = 1.0, 0.0
                    if inner > 0.0:
                        hole_low, hole_high = _node_interval(linear, c_sqr, constant, inner)
                    l_first = max(index_limits[2, 0], int(math.ceil(low)))
                    l_last = min(index_limits[2, 1], int(math.floor(high)))
                    for l in range(l_first, l_last + 1):
                        if hole_low < l < hole_high:
                            continue  # inside the inner sphere: out of reach of the Ewald sphere
                        f_sqr = table_value_cpu(table, origin, h, k, l)
                        if f_sqr == 0.0:
                            continue
                        vx = ux + l * r[2, 0]
                        vy = uy + l * r[2, 1]
                        vz = uz + l * r[2, 2]
                        v = math.sqrt(vx * vx + vy * vy + vz * vz)
                        dx, dy, dz = vx / v, vy / v, vz / v
                        # half-angle of the cone of directions whose S lies within reach of the
                        # node: the law of cosines in the triangle (Ewald centre, node, S)
                        cos_half = min(1.0, (radius * radius + v * v - reach * reach) / (2.0 * radius * v))
                        if cos_half <= 0.0:
                            continue  # reach beyond 90°: not a Bragg spot this kernel renders
                        cos_sqr = cos_half * cos_half
                        # rows outward from the node's point of closest approach, both ways,
                        # while the cone still crosses one of the row's sub-pixel lines (the cut is
                        # convex, so the rows it crosses are contiguous)
                        along = dx * frame[9] + dy * frame[10] + dz * frame[11]
                        if along <= 0.0:
                            continue
                        travel = (frame[0] * frame[9] + frame[1] * frame[10] + frame[2] * frame[11]) / along
                        hit_y = ((travel * dx - frame[0]) * frame[6] + (travel * dy - frame[1]) * frame[7]
                                 + (travel * dz - frame[2]) * frame[8])
                        line_below = int(math.floor((hit_y - 0.5 * sub) / sub))  # last sub-pixel line ≤ hit
                        row_below = line_below // oversample - s_start
                        row_above = (line_below + 1) // oversample - s_start
                        if row_above == row_below:
                            row_above += 1
                        term = weight * f_sqr
                        log_scale = debye_waller_exponent_cpu(b_factor, h, k, l, reciprocal_metric)
                        for direction in (-1, 1):
                            i = min(rows - 1, row_below) if direction < 0 else max(0, row_above)
                            while 0 <= i < rows:
                                x_low = math.inf
                                x_high = -math.inf
                                for sub_s in range(oversample):
                                    yd = (s_start + i) * pixel + (sub_s + 0.5) * sub
                                    lo, hi = _cone_row_span(frame[0] + yd * frame[6], frame[1] + yd * frame[7],
                                                            frame[2] + yd * frame[8], fx, fy, fz, dx, dy, dz, cos_sqr)
                                    if lo <= hi:
                                        x_low = min(x_low, lo)
                                        x_high = max(x_high, hi)
                                if x_low > x_high:
                                    break
                                j_lo = max(0, int(math.floor(x_low / pixel)) - f_start) if math.isfinite(x_low) else 0
                                j_hi = min(columns - 1, int(math.floor(x_high / pixel)) - f_start) \
                                    if math.isfinite(x_high) else columns - 1
                                for sub_s in range(oversample):
                                    # along the sub-pixel line p = q + x·f̂ the fractional indices are
                                    # h = (M·q + x·M·f̂)/|p| + c with M = radius·A, c = −radius·A·î
                                    yd = (s_start + i) * pixel + (sub_s + 0.5) * sub
                                    qx = frame[0] + yd * frame[6]
                                    qy = frame[1] + yd * frame[7]
                                    qz = frame[2] + yd * frame[8]
                                    qq = qx * qx + qy * qy + qz * qz
                                    qf = qx * fx + qy * fy + qz * fz
                                    mq0 = (a[0, 0] * qx + a[0, 1] * qy + a[0, 2] * qz) * radius
                                    mq1 = (a[1, 0] * qx + a[1, 1] * qy + a[1, 2] * qz) * radius
                                    mq2 = (a[2, 0] * qx + a[2, 1] * qy + a[2, 2] * qz) * radius
                                    for j in range(j_lo, j_hi + 1):
                                        for sub_f in range(oversample):
                                            xd = (f_start + j) * pixel + (sub_f + 0.5) * sub
                                            inverse = 1.0 / math.sqrt(qq + xd * (2.0 * qf + xd))
                                            hf = (mq0 + xd * mf0) * inverse + c0
                                            if abs(hf - h) > cuts[0] or (wide and math.ceil(hf - 0.5) != h):
                                                continue
                                            kf = (mq1 + xd * mf1) * inverse + c1
                                            if abs(kf - k) > cuts[1] or (wide and math.ceil(kf - 0.5) != k):
                                                continue
                                            lf = (mq2 + xd * mf2) * inverse + c2
                                            if abs(lf - l) > cuts[2] or (wide and math.ceil(lf - 0.5) != l):
                                                continue
                                            out[i, j] += term * squared_lattice_factor_cpu(
                                                shape, hf - h, kf - k, lf - l, cells, reciprocal_metric, log_scale)
                                i += direction
    for i in range(rows):
        for j in range(columns):
            if out[i, j] != 0.0:
                dx, dy, dz, distance = centre_direction_cpu(s_start + i, f_start + j, frame)
                out[i, j] *= scale * solid_angle_cpu(distance, frame) * polarization_factor_cpu(dx, dy, dz,
                                                                                               polarization)


def index_limits(real_vectors: np.ndarray, table: np.ndarray, origin, largest_s: float, reach: float) -> np.ndarray:
    """(3, 2) int64: per axis, the Miller indices both in the table and within |h| ≤ |a|·(|S|max + reach)."""
    lengths = np.linalg.norm(real_vectors, axis=1)
    limits = np.empty((3, 2), dtype=np.int64)
    for axis in range(3):
        bound = int(math.ceil(lengths[axis] * (largest_s + reach)))
        limits[axis, 0] = max(int(origin[axis]), -bound)
        limits[axis, 1] = min(int(origin[axis]) + table.shape[axis] - 1, bound)
    return limits
