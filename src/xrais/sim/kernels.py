"""Pixel-centred kinematic diffraction kernel (nanoBragg's physics); CPU kernels for Bragg
scattering (:func:`render_window_cpu`) and isotropic background (:func:`render_isotropic_cpu`).

:func:`make_pixel_function` builds the per-pixel physics from a ``jit`` decorator, so the very same
code is compiled by numba for the CPU (here) and by numba-cuda as device functions
(:mod:`xrais.sim.cuda_kernel`).

Per pixel (and sub-pixel), per source point (direction, wavelength), per lattice, per mosaic
domain: S = (d̂ − î)/λ; fractional indices h = a·S, k = b·S, l = c·S; nearest node
h0 = ceil(h − 0.5)...; the lattice transform F_latt of the chosen shape; |F(h0,k0,l0)|² from the
dense table times the Debye–Waller factor exp(−2B·stol²) of the node; the sum of
weight·|F|²·F_latt² is multiplied by the solid angle (with obliquity) and the polarization factor
of the pixel centre. The weights hold the averaging over domains, sources and sub-pixels
(nanoBragg divides by these "steps") and each lattice's number of blocks. Differences from
nanoBragg: Ω and polarization at the pixel centre rather than at its first sub-pixel (identical
without oversampling), no tricubic interpolation of F between nodes (nanoBragg's default when some
N ≤ 2), and a series expansion of the round transform near its peak where nanoBragg's formula
cancels to 0.

Fast path: ``cuts`` gives, per axis, the largest |h − h0| at which the lattice transform is still
above a relative threshold (F_latt² ≥ ε·F_latt(0)²); a domain whose fractional index along any axis
is farther from an integer is skipped. A whole lattice is skipped when its nominal orientation is
farther than cut + (largest mosaic chord)·|axis|·|S| from a node along any axis: no domain of it can
then be within the cut (|h_domain − h_nominal| ≤ |a|·chord·|S|). With infinite cuts nothing is
skipped: that is the exact kernel, the literal nanoBragg loop.
"""
from __future__ import annotations

import math

import numba
import numpy as np

SHAPE_CODES = {"square": 0, "round": 1, "gauss": 2, "gauss_hkl": 3, "tophat": 4}
#: nanoBragg's round_xtal normalization (square root of the cube/sphere volume ratio).
ROUND_NORMALIZATION = 0.723601254558268
#: nanoBragg's Gaussian width constant and tophat radius² in its exponent units.
GAUSS_WIDTH = 0.63
TOPHAT_RADIUS_SQUARED = 0.3969


def make_geometry_functions(jit):
    """Pixel-centre geometry compiled with ``jit``: returns ``(centre_direction, solid_angle,
    polarization_factor)``.

    centre_direction(s, f, frame) → (dx, dy, dz, r): unit vector to the centre of pixel (s, f)
    and its distance (mm); solid_angle(r, frame) → pixel solid angle (sr) with obliquity;
    polarization_factor(dx, dy, dz, polarization) → nanoBragg's polarization factor.
    """

    @jit
    def centre_direction(s, f, frame):
        fd = (f + 0.5) * frame[12]
        sd = (s + 0.5) * frame[12]
        px = frame[0] + fd * frame[3] + sd * frame[6]
        py = frame[1] + fd * frame[4] + sd * frame[7]
        pz = frame[2] + fd * frame[5] + sd * frame[8]
        r = math.sqrt(px * px + py * py + pz * pz)
        return px / r, py / r, pz / r, r

    @jit
    def solid_angle(r, frame):
        close_distance = frame[0] * frame[9] + frame[1] * frame[10] + frame[2] * frame[11]
        return frame[12] * frame[12] / (r * r) * close_distance / r

    @jit
    def polarization_factor(dx, dy, dz, polarization):
        ix = polarization[0]
        iy = polarization[1]
        iz = polarization[2]
        kahn = polarization[6]
        cos2theta = ix * dx + iy * dy + iz * dz
        cos2theta_sqr = cos2theta * cos2theta
        sin2theta_sqr = 1.0 - cos2theta_sqr
        cos2psi = 0.0
        if kahn != 0.0:
            # B_in = axis × incident, E_in = incident × B_in (both unit vectors)
            ax = polarization[3]
            ay = polarization[4]
            az = polarization[5]
            bx = ay * iz - az * iy
            by = az * ix - ax * iz
            bz = ax * iy - ay * ix
            norm = math.sqrt(bx * bx + by * by + bz * bz)
            bx /= norm
            by /= norm
            bz /= norm
            ex = iy * bz - iz * by
            ey = iz * bx - ix * bz
            ez = ix * by - iy * bx
            psi = -math.atan2(dx * bx + dy * by + dz * bz, dx * ex + dy * ey + dz * ez)
            cos2psi = math.cos(2.0 * psi)
        return 0.5 * (1.0 + cos2theta_sqr - kahn * cos2psi * sin2theta_sqr)

    return centre_direction, solid_angle, polarization_factor


def make_lattice_functions(jit):
    """Per-term physics compiled with ``jit``: returns ``(squared_lattice_factor, table_value,
    debye_waller_exponent)``.

    squared_lattice_factor(shape, dh, dk, dl, cells, reciprocal_metric, log_scale) → F_latt² ·
    exp(log_scale) at fractional offsets (dh, dk, dl) from a node; table_value(table, origin, h0,
    k0, l0) → |F|² of the node (0 outside the table); debye_waller_exponent(b_factor, h0, k0, l0,
    reciprocal_metric) → −2B·stol² of the node.
    """

    @jit
    def sincg(x, n):
        if x == 0.0:
            return n
        return math.sin(x * n) / math.sin(x)

    @jit
    def sinc3(x):
        """3(sin x − x cos x)/x³, the transform of a sphere; Taylor series near 0, where the
        direct formula (nanoBragg's) loses every digit to cancellation."""
        if abs(x) < 1e-2:
            x2 = x * x
            return 1.0 - x2 / 10.0 + x2 * x2 / 280.0
        return 3.0 * (math.sin(x) / x - math.cos(x)) / (x * x)

    @jit
    def squared_lattice_factor(shape, dh, dk, dl, cells, reciprocal_metric, log_scale):
        """F_latt² · exp(log_scale) (log_scale: the Debye–Waller exponent, folded into the
        Gaussian's exponent so that Gaussian shapes need a single exp)."""
        na = cells[0]
        nb = cells[1]
        nc = cells[2]
        total = na * nb * nc
        if shape == 3:
            hrad_sqr = dh * dh * na * na + dk * dk * nb * nb + dl * dl * nc * nc
            return total * total * math.exp(-2.0 * hrad_sqr / GAUSS_WIDTH + log_scale)
        if shape == 2 or shape == 4:
            g = reciprocal_metric
            dq_sqr = (dh * dh * g[0, 0] + dk * dk * g[1, 1] + dl * dl * g[2, 2]
                      + 2.0 * (dh * dk * g[0, 1] + dh * dl * g[0, 2] + dk * dl * g[1, 2]))
            rad_star_sqr = dq_sqr * total * total
            if shape == 2:
                return total * total * math.exp(-2.0 * rad_star_sqr / GAUSS_WIDTH + log_scale)
            if rad_star_sqr >= TOPHAT_RADIUS_SQUARED:
                return 0.0
            value = total
        elif shape == 1:
            hrad_sqr = dh * dh * na * na + dk * dk * nb * nb + dl * dl * nc * nc
            value = total * ROUND_NORMALIZATION * sinc3(math.pi * math.sqrt(hrad_sqr))
        else:
            value = 1.0
            if na > 1.0:
                value *= sincg(math.pi * dh, na)
            if nb > 1.0:
                value *= sincg(math.pi * dk, nb)
            if nc > 1.0:
                value *= sincg(math.pi * dl, nc)
        if log_scale == 0.0:
            return value * value
        return value * value * math.exp(log_scale)

    @jit
    def table_value(table, origin, h0, k0, l0):
        # int(): math.ceil gives an integer on the CPU but a float under CUDA
        i = int(h0) - origin[0]
        j = int(k0) - origin[1]
        m = int(l0) - origin[2]
        if i < 0 or j < 0 or m < 0 or i >= table.shape[0] or j >= table.shape[1] or m >= table.shape[2]:
            return 0.0
        return table[i, j, m]

    @jit
    def debye_waller_exponent(b_factor, h0, k0, l0, g):
        """−2B·stol² of node (h0, k0, l0), stol = |q|/2."""
        if b_factor == 0.0:
            return 0.0
        q_sqr = (h0 * h0 * g[0, 0] + k0 * k0 * g[1, 1] + l0 * l0 * g[2, 2]
                 + 2.0 * (h0 * k0 * g[0, 1] + h0 * l0 * g[0, 2] + k0 * l0 * g[1, 2]))
        return -0.5 * b_factor * q_sqr

    return squared_lattice_factor, table_value, debye_waller_exponent


def make_pixel_function(jit):
    """Per-pixel physics compiled with ``jit`` (numba.njit or numba.cuda.jit(device=True)).

    Returns ``pixel_value(s, f, frame, oversample, sources, polarization, domains, weights,
    lattice_start, lattice_nominal, lattice_chord, axis_lengths, cuts, reciprocal_metric, cells,
    shape, table, origin, b_factor)``: Σ weight·|F|²·F_latt² × Ω × polarization for pixel (s, f).
    """
    centre_direction, solid_angle, polarization_factor = make_geometry_functions(jit)
    squared_lattice_factor, table_value, debye_waller_exponent = make_lattice_functions(jit)

    @jit
    def pixel_value(s, f, frame, oversample, sources, polarization, domains, weights, lattice_start,
                    lattice_nominal, lattice_chord, axis_lengths, cuts, reciprocal_metric, cells, shape,
                    table, origin, b_factor):
        pixel = frame[12]
        sub = pixel / oversample
        total = 0.0
        for sub_s in range(oversample):
            for sub_f in range(oversample):
                fd = f * pixel + (sub_f + 0.5) * sub
                sd = s * pixel + (sub_s + 0.5) * sub
                px = frame[0] + fd * frame[3] + sd * frame[6]
                py = frame[1] + fd * frame[4] + sd * frame[7]
                pz = frame[2] + fd * frame[5] + sd * frame[8]
                r = math.sqrt(px * px + py * py + pz * pz)
                dx = px / r
                dy = py / r
                dz = pz / r
                for source in range(sources.shape[0]):
                    wavelength = sources[source, 3]
                    sx = (dx - sources[source, 0]) / wavelength
                    sy = (dy - sources[source, 1]) / wavelength
                    sz = (dz - sources[source, 2]) / wavelength
                    s_length = math.sqrt(sx * sx + sy * sy + sz * sz)
                    for lattice in range(lattice_start.shape[0] - 1):
                        slack = lattice_chord[lattice] * s_length
                        h = (lattice_nominal[lattice, 0, 0] * sx + lattice_nominal[lattice, 0, 1] * sy
                             + lattice_nominal[lattice, 0, 2] * sz)
                        if abs(h - math.ceil(h - 0.5)) > cuts[0] + slack * axis_lengths[0]:
                            continue
                        k = (lattice_nominal[lattice, 1, 0] * sx + lattice_nominal[lattice, 1, 1] * sy
                             + lattice_nominal[lattice, 1, 2] * sz)
                        if abs(k - math.ceil(k - 0.5)) > cuts[1] + slack * axis_lengths[1]:
                            continue
                        l = (lattice_nominal[lattice, 2, 0] * sx + lattice_nominal[lattice, 2, 1] * sy
                             + lattice_nominal[lattice, 2, 2] * sz)
                        if abs(l - math.ceil(l - 0.5)) > cuts[2] + slack * axis_lengths[2]:
                            continue
                        for domain in range(lattice_start[lattice], lattice_start[lattice + 1]):
                            h = domains[domain, 0, 0] * sx + domains[domain, 0, 1] * sy + domains[domain, 0, 2] * sz
                            h0 = math.ceil(h - 0.5)
                            if abs(h - h0) > cuts[0]:
                                continue
                            k = domains[domain, 1, 0] * sx + domains[domain, 1, 1] * sy + domains[domain, 1, 2] * sz
                            k0 = math.ceil(k - 0.5)
                            if abs(k - k0) > cuts[1]:
                                continue
                            l = domains[domain, 2, 0] * sx + domains[domain, 2, 1] * sy + domains[domain, 2, 2] * sz
                            l0 = math.ceil(l - 0.5)
                            if abs(l - l0) > cuts[2]:
                                continue
                            f_sqr = table_value(table, origin, h0, k0, l0)
                            if f_sqr == 0.0:
                                continue
                            total += weights[domain] * f_sqr * squared_lattice_factor(
                                shape, h - h0, k - k0, l - l0, cells, reciprocal_metric,
                                debye_waller_exponent(b_factor, h0, k0, l0, reciprocal_metric))
        if total == 0.0:
            return 0.0
        # solid angle (with obliquity) and polarization at the pixel centre
        dx, dy, dz, r = centre_direction(s, f, frame)
        return total * solid_angle(r, frame) * polarization_factor(dx, dy, dz, polarization)

    return pixel_value


# inline: the per-pixel functions take ~10 arrays; calls would cost more than their arithmetic
_cpu_jit = numba.njit(cache=True, nogil=True, inline="always")
pixel_value_cpu = make_pixel_function(_cpu_jit)
centre_direction_cpu, solid_angle_cpu, polarization_factor_cpu = make_geometry_functions(_cpu_jit)
squared_lattice_factor_cpu, table_value_cpu, debye_waller_exponent_cpu = make_lattice_functions(_cpu_jit)


@numba.njit(parallel=True, cache=True, nogil=True)
def render_window_cpu(out, s_start, s_stop, f_start, f_stop, row_stride, scale, frame, oversample, sources,
                      polarization, domains, weights, lattice_start, lattice_nominal, lattice_chord, axis_lengths,
                      cuts, reciprocal_metric, cells, shape, table, origin, b_factor):
    """out[s, f] = scale · pixel_value(s, f) over the window. Rows are visited in the order
    i·row_stride mod rows (a permutation, see :func:`coprime_stride`) so that the threads share the
    expensive high-angle rows evenly."""
    rows = s_stop - s_start
    for i in numba.prange(rows):
        s = s_start + (i * row_stride) % rows
        for f in range(f_start, f_stop):
            out[s, f] = scale * pixel_value_cpu(s, f, frame, oversample, sources, polarization, domains, weights,
                                                lattice_start, lattice_nominal, lattice_chord, axis_lengths, cuts,
                                                reciprocal_metric, cells, shape, table, origin, b_factor)


def coprime_stride(n: int) -> int:
    """A stride near n/φ coprime with n, so that i ↦ i·stride mod n permutes 0..n−1."""
    stride = max(1, int(n * 0.6180339887))
    while math.gcd(stride, n) != 1:
        stride += 1
    return stride


def empty_cuts() -> np.ndarray:
    """Cuts of the exact kernel (nothing skipped)."""
    return np.full(3, np.inf)


@numba.njit(parallel=True, cache=True, nogil=True)
def render_isotropic_cpu(out, s_start, s_stop, f_start, f_stop, row_stride, frame, polarization, wavelength,
                         curve, stol_step):
    """out[s, f] += curve(stol) · Ω · polarization for the window: an isotropic scatterer at the
    sample whose photons per steradian (before polarization) are tabulated in ``curve`` on a
    uniform sin(θ)/λ grid of step ``stol_step`` (Å⁻¹), linearly interpolated, flat beyond its end."""
    rows = s_stop - s_start
    last = curve.shape[0] - 1
    for i in numba.prange(rows):
        s = s_start + (i * row_stride) % rows
        for f in range(f_start, f_stop):
            dx, dy, dz, r = centre_direction_cpu(s, f, frame)
            cos2theta = dx * polarization[0] + dy * polarization[1] + dz * polarization[2]
            position = math.sqrt(max(0.0, 0.5 * (1.0 - cos2theta))) / wavelength / stol_step
            index = int(position)
            if index >= last:
                value = curve[last]
            else:
                fraction = position - index
                value = curve[index] * (1.0 - fraction) + curve[index + 1] * fraction
            out[s, f] += value * solid_angle_cpu(r, frame) * polarization_factor_cpu(dx, dy, dz, polarization)
